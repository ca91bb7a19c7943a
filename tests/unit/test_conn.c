/*
 * test_conn.c: unit tests for conn.h: a server conn and a client conn on
 * one libuv loop over loopback, and raw sockets that misbehave.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "conn.h"
#include "harness.h"
#include "msgmac.h"
#include "tls.h"
#include "util.h"

static const char secret[] = "s3cret";

/* What one side saw. */
struct side {
	int ready;
	uint8_t role;
	int msgs;
	unsigned types[16];
	uint64_t last_task;
	int closes;
	char reason[256];
	int refused; /* xy_conn_refused at on_close */
	int close_in_msg; /* on_msg closes the conn */
	int close_after;  /* on_msg closes the conn after this many */
	size_t held_at_last; /* xy_conn_memory before the last message */
	struct xy_conn *c;
};

static struct {
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_timer_t guard;
	int port;
	struct side srv, cli;
	int want_closes;
	SSL_CTX *srv_tls; /* the server's TLS; NULL: plain */
} T;

static void maybe_stop(void)
{
	if (T.srv.closes + T.cli.closes >= T.want_closes)
		uv_stop(&T.loop);
}

static struct side *side_of(struct xy_conn *c)
{
	return xy_conn_data(c);
}

static void on_ready(struct xy_conn *c, uint8_t role)
{
	struct side *s = side_of(c);
	s->ready++;
	s->role = role;
	if (s == &T.srv) {
		/* The server answers once the client is in. */
		union xy_msg m = {.cancel = {.task_id = 4242}};
		XY_CHECK_EQ(xy_conn_send(c, XY_MSG_CANCEL, &m), 0);
	}
}

static void on_msg(struct xy_conn *c, unsigned type, union xy_msg *m)
{
	struct side *s = side_of(c);
	if (s->msgs < 16)
		s->types[s->msgs] = type;
	s->msgs++;
	if (type == XY_MSG_CANCEL)
		s->last_task = m->cancel.task_id;
	if (type == XY_MSG_HELLO) {
		/* Steal a field: the conn must not free it. */
		char *name = m->hello.name;
		m->hello.name = NULL;
		XY_CHECK(!strcmp(name, "w1"));
		free(name);
	}
	if (s->close_after && s->msgs == s->close_after) {
		s->held_at_last = xy_conn_memory(c);
		xy_conn_close(c, "all came");
	} else if (s->close_in_msg)
		xy_conn_close(c, "handler closed");
	else if (s == &T.cli && s->msgs == 1)
		xy_conn_close(c, "client done");
}

static void on_close(struct xy_conn *c, const char *reason)
{
	struct side *s = side_of(c);
	XY_CHECK(xy_conn_closing(c));
	s->closes++;
	s->refused = xy_conn_refused(c);
	snprintf(s->reason, sizeof s->reason, "%s", reason);
	maybe_stop();
}

static void on_connection(uv_stream_t *server, int status)
{
	XY_CHECK_EQ(status, 0);
	struct xy_conn_opts o = {secret, strlen(secret), 0, on_ready, on_msg,
				 on_close, &T.srv};
	o.tls = T.srv_tls;
	T.srv.c = xy_conn_accept(server, &o);
	XY_CHECK(T.srv.c != NULL);
}

static void guard_cb(uv_timer_t *t)
{
	fprintf(stderr, "loop guard expired\n");
	exit(1);
}

static void setup(int want_closes)
{
	memset(&T, 0, sizeof T);
	T.want_closes = want_closes;
	XY_CHECK_EQ(uv_loop_init(&T.loop), 0);
	uv_tcp_init(&T.loop, &T.listener);
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	XY_CHECK_EQ(uv_tcp_bind(&T.listener, (struct sockaddr *)&a, 0), 0);
	XY_CHECK_EQ(uv_listen((uv_stream_t *)&T.listener, 16, on_connection),
		    0);
	int len = sizeof a;
	uv_tcp_getsockname(&T.listener, (struct sockaddr *)&a, &len);
	T.port = ntohs(a.sin_port);
	uv_timer_init(&T.loop, &T.guard);
	uv_timer_start(&T.guard, guard_cb, 15000, 0);
	uv_unref((uv_handle_t *)&T.guard);
}

static void run_and_teardown(void)
{
	uv_run(&T.loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&T.listener, NULL);
	uv_close((uv_handle_t *)&T.guard, NULL);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	XY_CHECK_EQ(uv_loop_close(&T.loop), 0);
	xy_test_check_no_leaks();
}

/* Sends stderr to a file so a test can read the log. */
static void capture_log(char *path, size_t n)
{
	snprintf(path, n, "%s/log", xy_test_tmpdir());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	XY_CHECK(fd >= 0);
	dup2(fd, 2);
	close(fd);
}

static void t_handshake_and_messages(void)
{
	setup(2);
	struct xy_conn_opts o = {secret, strlen(secret), XY_ROLE_WORKER,
				 on_ready, on_msg, on_close, &T.cli};
	T.cli.c = xy_conn_connect(&T.loop, "127.0.0.1", T.port, &o);
	XY_CHECK(T.cli.c != NULL);
	/* Queued before the handshake ends: held until it does. */
	union xy_msg m;
	memset(&m, 0, sizeof m);
	m.hello.name = "w1";
	m.hello.hostname = "h";
	m.hello.cores = 8;
	XY_CHECK_EQ(xy_conn_send(T.cli.c, XY_MSG_HELLO, &m), 0);
	XY_CHECK_EQ(xy_conn_send(T.cli.c, XY_MSG_KEEPALIVE, NULL), 0);
	m.cancel.task_id = 7;
	XY_CHECK_EQ(xy_conn_send(T.cli.c, XY_MSG_CANCEL, &m), 0);
	XY_CHECK(xy_conn_pending(T.cli.c) > 0);
	run_and_teardown();

	XY_CHECK_EQ(T.srv.ready, 1);
	XY_CHECK_EQ(T.cli.ready, 1);
	XY_CHECK_EQ(T.srv.role, XY_ROLE_WORKER);
	XY_CHECK_EQ(T.srv.msgs, 3);
	XY_CHECK_EQ(T.srv.types[0], XY_MSG_HELLO);
	XY_CHECK_EQ(T.srv.types[1], XY_MSG_KEEPALIVE);
	XY_CHECK_EQ(T.srv.types[2], XY_MSG_CANCEL);
	XY_CHECK_EQ(T.srv.last_task, 7);
	XY_CHECK_EQ(T.cli.msgs, 1);
	XY_CHECK_EQ(T.cli.last_task, 4242);
	XY_CHECK_EQ(T.srv.closes, 1);
	XY_CHECK_EQ(T.cli.closes, 1);
	XY_CHECK(!strcmp(T.cli.reason, "client done"));
	XY_CHECK(!strcmp(T.srv.reason, "closed by peer"));
	XY_CHECK_EQ(T.cli.refused, 0);
}

static void t_wrong_secret(void)
{
	char log[4200];
	capture_log(log, sizeof log);
	setup(2);
	struct xy_conn_opts o = {"wrong", 5, XY_ROLE_WORKER, on_ready, on_msg,
				 on_close, &T.cli};
	T.cli.c = xy_conn_connect(&T.loop, "127.0.0.1", T.port, &o);
	run_and_teardown();
	XY_CHECK_EQ(T.srv.ready, 0);
	XY_CHECK_EQ(T.cli.ready, 0);
	XY_CHECK_EQ(T.srv.msgs + T.cli.msgs, 0);
	XY_CHECK_EQ(T.srv.closes, 1);
	XY_CHECK_EQ(T.cli.closes, 1);
	XY_CHECK(!strcmp(T.srv.reason, "bad secret"));
	XY_CHECK(strstr(T.cli.reason, "bad secret"));
	/* A refusal that trying again would meet again. */
	XY_CHECK_EQ(T.cli.refused, 1);
	size_t n;
	char *text = xy_read_file(log, 1 << 20, &n);
	XY_CHECK(text && strstr(text, "refused 127.0.0.1:"));
	XY_CHECK(strstr(text, ": bad secret"));
	free(text);
}

static void t_connect_refused(void)
{
	setup(1);
	int port = T.port;
	uv_close((uv_handle_t *)&T.listener, NULL);
	uv_run(&T.loop, UV_RUN_NOWAIT);
	struct xy_conn_opts o = {secret, strlen(secret), XY_ROLE_WORKER,
				 on_ready, on_msg, on_close, &T.cli};
	T.cli.c = xy_conn_connect(&T.loop, "127.0.0.1", port, &o);
	XY_CHECK(T.cli.c != NULL);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	XY_CHECK_EQ(T.cli.closes, 1);
	XY_CHECK(strstr(T.cli.reason, "cannot connect"));
	XY_CHECK_EQ(T.cli.refused, 0); /* a manager may listen later */
	uv_close((uv_handle_t *)&T.guard, NULL);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	XY_CHECK_EQ(uv_loop_close(&T.loop), 0);
	xy_test_check_no_leaks();
}

static int raw_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	XY_CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	return fd;
}

/* A raw listening socket on loopback, non-blocking; its port in *port. */
static int raw_listen(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	XY_CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	XY_CHECK_EQ(listen(fd, 4), 0);
	XY_CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Turns the loop (the client's lookup and connect) until a connection
 * is pending on lfd, within the guard's time, and accepts it. */
static int raw_accept(int lfd)
{
	const struct timespec nap = {0, 1000000};
	uint64_t end = xy_mono_us() + 10000000;
	int fd;

	while ((fd = accept(lfd, NULL, NULL)) < 0 && xy_mono_us() < end) {
		uv_run(&T.loop, UV_RUN_NOWAIT);
		nanosleep(&nap, NULL);
	}
	XY_CHECK(fd >= 0);
	return fd;
}

/* A client that meets a peer of another protocol version, or a peer
 * that hangs up in the handshake: only the first is refused for good. */
static void t_refused_or_not(void)
{
	struct xy_conn_opts o = {secret, strlen(secret), XY_ROLE_WORKER,
				 on_ready, on_msg, on_close, &T.cli};
	union xy_msg ch = {.challenge = {.magic = XY_PROTO_MAGIC,
					 .version = XY_PROTO_VERSION + 1}};
	struct xy_buf b;
	int port, lfd, fd;

	setup(1);
	o.quiet = 1;
	lfd = raw_listen(&port);
	T.cli.c = xy_conn_connect(&T.loop, "127.0.0.1", port, &o);
	fd = raw_accept(lfd);
	xy_buf_init(&b);
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_CHALLENGE, &ch), 0);
	XY_CHECK_EQ(write(fd, b.data, b.len), (ssize_t)b.len);
	xy_buf_free(&b);
	run_and_teardown();
	XY_CHECK_EQ(T.cli.closes, 1);
	XY_CHECK(strstr(T.cli.reason, "version mismatch"));
	XY_CHECK_EQ(T.cli.refused, 1);
	close(fd);

	setup(1);
	T.cli.c = xy_conn_connect(&T.loop, "127.0.0.1", port, &o);
	close(raw_accept(lfd));
	run_and_teardown();
	XY_CHECK_EQ(T.cli.closes, 1);
	XY_CHECK(!strcmp(T.cli.reason, "closed by peer"));
	XY_CHECK_EQ(T.cli.refused, 0);
	close(lfd);
}

static void t_handshake_timeout(void)
{
	/* A peer that connects and says nothing is dropped after 10 s. */
	setup(1);
	int fd = raw_connect(T.port);
	uint64_t t0 = xy_mono_us();
	run_and_teardown();
	uint64_t dt = xy_mono_us() - t0;
	XY_CHECK(dt > 9000000 && dt < 12000000);
	XY_CHECK_EQ(T.srv.closes, 1);
	XY_CHECK(!strcmp(T.srv.reason, "handshake timed out"));
	close(fd);
}

static void t_preauth_oversized_frame(void)
{
	setup(1);
	int fd = raw_connect(T.port);
	uint8_t hdr[8] = {0xd0, 0x07, 0, 0, XY_MSG_AUTH, 0, 0, 0}; /* 2000 */
	XY_CHECK_EQ(write(fd, hdr, 8), 8);
	run_and_teardown();
	XY_CHECK_EQ(T.srv.closes, 1);
	XY_CHECK_EQ(T.srv.ready, 0);
	XY_CHECK(strstr(T.srv.reason, "exceeds 1024"));
	/* The raw peer got a CHALLENGE, then an ERROR, then EOF. */
	union xy_msg m;
	char err[256];
	XY_CHECK_EQ(xy_fd_recv_msg(fd, XY_MSG_CHALLENGE, &m, 1024, 2000, err,
				   sizeof err), 0);
	XY_CHECK_EQ(xy_fd_recv_msg(fd, XY_MSG_ERROR, &m, 1024, 2000, err,
				   sizeof err), 0);
	XY_CHECK(strstr(m.error.text, "exceeds"));
	xy_msg_free(XY_MSG_ERROR, &m);
	char c;
	XY_CHECK_EQ(xy_fd_read_all(fd, &c, 1, 2000), -1);
	close(fd);
}

/* A blocking client in a thread: authenticates, then sends raw bytes. */
struct raw_client {
	int port;
	const void *bytes;
	size_t n;
	int rc;
	size_t piece; /* if not 0: the first 64 bytes written this many at a
		       * time, the rest 7000 at a time */
	const void *tail; /* then, after a pause, these */
	size_t n_tail;
	int raw; /* send the bytes as they are, not as tagged frames */
	/* After tagging: M_FLIP changes the first frame's last payload
	 * byte, M_REPLAY sends everything twice, M_SWAP sends the second
	 * frame (with its tag) before the first. */
	int mutate;
};

enum { M_NONE, M_FLIP, M_REPLAY, M_SWAP };

/* Rewrites the frames in b[0..n) as a conn without TLS sends them, each
 * followed by its tag (msgmac.h), into out. */
static void tag_frames(struct xy_msgmac *mac, const uint8_t *b, size_t n,
		       struct xy_buf *out)
{
	for (size_t pos = 0; pos + XY_FRAME_HEADER <= n;) {
		size_t len = XY_FRAME_HEADER + (b[pos] | b[pos + 1] << 8 |
						b[pos + 2] << 16 |
						(size_t)b[pos + 3] << 24);
		uint8_t tag[XY_MSGMAC_TAG];
		XY_CHECK_EQ(xy_msgmac_sign(mac, b + pos, len, tag), 0);
		xy_buf_put_raw(out, b + pos, len);
		xy_buf_put_raw(out, tag, sizeof tag);
		pos += len;
	}
}

/* The client's MAC after its handshake, for the frames of a raw client. */
static struct xy_msgmac *raw_mac(const uint8_t *ns, const uint8_t *nc)
{
	return xy_msgmac_create(secret, strlen(secret), 'c', ns, nc);
}

static void mutate(int how, struct xy_buf *b)
{
	size_t first = XY_FRAME_HEADER + (b->data[0] | b->data[1] << 8) +
		       XY_MSGMAC_TAG;
	if (how == M_FLIP) {
		b->data[first - XY_MSGMAC_TAG - 1] ^= 0x01;
	} else if (how == M_REPLAY) {
		size_t n = b->len;
		xy_buf_reserve(b, n);
		memcpy(b->data + n, b->data, n);
		b->len = 2 * n;
	} else if (how == M_SWAP) {
		uint8_t *copy = malloc(b->len);
		size_t rest = b->len - first;
		memcpy(copy, b->data + first, rest);
		memcpy(copy + rest, b->data, first);
		memcpy(b->data, copy, b->len);
		free(copy);
	}
}

static void *raw_client_thread(void *arg)
{
	struct raw_client *r = arg;
	int fd = raw_connect(r->port);
	uint8_t ns[XY_NONCE_LEN], nc[XY_NONCE_LEN];
	struct xy_buf tagged, tail;
	r->rc = xy_auth_client_fd_nonces(fd, secret, strlen(secret),
					 XY_ROLE_WORKER, 5000, ns, nc, NULL, 0);
	xy_buf_init(&tagged);
	xy_buf_init(&tail);
	if (r->rc == 0 && !r->raw) {
		/* Frames as a conn without TLS sends them: tagged. */
		struct xy_msgmac *mac = raw_mac(ns, nc);
		XY_CHECK(mac != NULL);
		tag_frames(mac, r->bytes, r->n, &tagged);
		tag_frames(mac, r->tail, r->n_tail, &tail);
		xy_msgmac_destroy(mac);
		mutate(r->mutate, &tagged);
		r->bytes = tagged.data;
		r->n = tagged.len;
		r->tail = tail.data;
		r->n_tail = tail.len;
	}
	const struct timespec nap = {0, 2000000};
	for (size_t at = 0, k; r->rc == 0 && at < r->n; at += k) {
		k = !r->piece ? r->n : at < 64 ? r->piece : 7000;
		if (k > r->n - at)
			k = r->n - at;
		xy_fd_write_all(fd, (const char *)r->bytes + at, k, 5000);
		if (r->piece)
			nanosleep(&nap, NULL);
	}
	if (r->rc == 0 && r->n_tail) {
		const struct timespec pause = {0, 50000000};
		nanosleep(&pause, NULL);
		xy_fd_write_all(fd, r->tail, r->n_tail, 5000);
	}
	/* Wait for the server to close. */
	char c;
	while (xy_fd_read_all(fd, &c, 1, 5000) == 0)
		;
	close(fd);
	xy_buf_free(&tagged);
	xy_buf_free(&tail);
	return NULL;
}

static void t_bad_frame_after_auth(void)
{
	setup(1);
	/* A TASK frame whose payload is three bytes. */
	static const uint8_t bad[] = {3, 0, 0, 0, XY_MSG_TASK, 0, 0, 0, 1, 2,
				      3};
	struct raw_client r = {T.port, bad, sizeof bad, -1, 0, NULL, 0};
	pthread_t th;
	pthread_create(&th, NULL, raw_client_thread, &r);
	run_and_teardown();
	pthread_join(th, NULL);
	XY_CHECK_EQ(r.rc, 0);
	XY_CHECK_EQ(T.srv.ready, 1);
	XY_CHECK_EQ(T.srv.msgs, 0);
	XY_CHECK_EQ(T.srv.closes, 1);
	XY_CHECK(strstr(T.srv.reason, "TASK: truncated"));
}

/* Without TLS every frame after the handshake carries a MAC over its
 * bytes and its place in the stream: a frame changed on the way, sent
 * again, moved, or sent without a tag, is refused and the conn dropped
 * before its handler sees it. */
static void t_mac_refuses(void)
{
	static const struct {
		int mutate, raw;
		unsigned delivered;
		const char *why;
	} cases[] = {
		{M_NONE, 0, 3, "all came"},
		{M_FLIP, 0, 0, "message 0 (CANCEL) failed its MAC"},
		{M_REPLAY, 0, 3, "message 3 (CANCEL) failed its MAC"},
		{M_SWAP, 0, 0, "message 0 (KEEPALIVE) failed its MAC"},
		{M_NONE, 1, 0, "failed its MAC"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		setup(1);
		/* Else the server closes at the first bad tag. */
		if (!cases[i].mutate && !cases[i].raw)
			T.srv.close_after = 3;
		struct xy_buf b;
		xy_buf_init(&b);
		union xy_msg m = {.cancel = {.task_id = 7}};
		xy_msg_encode(&b, XY_MSG_CANCEL, &m);
		xy_msg_encode(&b, XY_MSG_KEEPALIVE, NULL);
		m.cancel.task_id = 8;
		xy_msg_encode(&b, XY_MSG_CANCEL, &m);
		struct raw_client r = {T.port, b.data, b.len, -1, 0, NULL, 0,
				       cases[i].raw, cases[i].mutate};
		pthread_t th;
		pthread_create(&th, NULL, raw_client_thread, &r);
		run_and_teardown();
		pthread_join(th, NULL);
		xy_buf_free(&b);
		XY_CHECK_EQ(r.rc, 0);
		XY_CHECK_EQ(T.srv.msgs, cases[i].delivered);
		XY_CHECK_EQ(T.srv.closes, 1);
		if (!strstr(T.srv.reason, cases[i].why))
			fprintf(stderr, "case %zu: %s\n", i, T.srv.reason);
		XY_CHECK(strstr(T.srv.reason, cases[i].why));
	}
}

static void t_close_inside_on_msg(void)
{
	setup(1);
	T.srv.close_in_msg = 1;
	/* Three frames in one write: only the first is delivered. */
	struct xy_buf b;
	xy_buf_init(&b);
	for (int i = 0; i < 3; i++)
		xy_msg_encode(&b, XY_MSG_KEEPALIVE, NULL);
	struct raw_client r = {T.port, b.data, b.len, -1, 0, NULL, 0};
	pthread_t th;
	pthread_create(&th, NULL, raw_client_thread, &r);
	run_and_teardown();
	pthread_join(th, NULL);
	xy_buf_free(&b);
	XY_CHECK_EQ(T.srv.msgs, 1);
	XY_CHECK_EQ(T.srv.closes, 1);
	XY_CHECK(!strcmp(T.srv.reason, "handler closed"));
}

/* Frames cut across reads at every kind of place (inside a header,
 * inside a body, a frame and the start of the next in one read, a frame
 * larger than a read) all arrive whole; and a conn with no frame in part
 * holds no read buffer. */
static void t_frames_split_across_reads(void)
{
	static const size_t pieces[] = {1, 5, 13, 7000, 1 << 20};
	for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
		setup(1);
		T.srv.close_after = 5;
		struct xy_buf b;
		xy_buf_init(&b);
		union xy_msg m = {.cancel = {.task_id = 9}};
		xy_msg_encode(&b, XY_MSG_KEEPALIVE, NULL);
		xy_msg_encode(&b, XY_MSG_CANCEL, &m);
		xy_msg_encode(&b, XY_MSG_KEEPALIVE, NULL);
		size_t n = 200000; /* over the 64 KiB a read takes */
		char *json = malloc(n + 1);
		memset(json, 'j', n);
		json[n] = 0;
		m.status_reply.json = json;
		xy_msg_encode(&b, XY_MSG_STATUS_REPLY, &m);
		free(json);
		size_t head = b.len;
		xy_msg_encode(&b, XY_MSG_KEEPALIVE, NULL);
		struct raw_client r = {T.port, b.data, head, -1, pieces[i],
				       b.data + head, b.len - head};
		pthread_t th;
		pthread_create(&th, NULL, raw_client_thread, &r);
		run_and_teardown();
		pthread_join(th, NULL);
		xy_buf_free(&b);
		XY_CHECK_EQ(r.rc, 0);
		XY_CHECK_EQ(T.srv.msgs, 5);
		XY_CHECK_EQ(T.srv.types[0], XY_MSG_KEEPALIVE);
		XY_CHECK_EQ(T.srv.types[1], XY_MSG_CANCEL);
		XY_CHECK_EQ(T.srv.last_task, 9);
		XY_CHECK_EQ(T.srv.types[3], XY_MSG_STATUS_REPLY);
		XY_CHECK_EQ(T.srv.types[4], XY_MSG_KEEPALIVE);
		/* The last frame came alone, after a pause: the conn had
		 * nothing read left over, and held no read buffer. */
		XY_CHECK(T.srv.held_at_last < 4096);
		XY_CHECK(!strcmp(T.srv.reason, "all came"));
	}
}

static void t_large_messages(void)
{
	/* A frame near the limit crosses many reads and writes. */
	setup(2);
	struct xy_conn_opts o = {secret, strlen(secret), XY_ROLE_STATUS,
				 on_ready, on_msg, on_close, &T.cli};
	T.cli.c = xy_conn_connect(&T.loop, "127.0.0.1", T.port, &o);
	size_t n = XY_MAX_STATUS;
	char *json = malloc(n + 1);
	memset(json, 'j', n);
	json[n] = 0;
	union xy_msg m = {.status_reply = {json}};
	XY_CHECK_EQ(xy_conn_send(T.cli.c, XY_MSG_STATUS_REPLY, &m), 0);
	json[n - 1] = 0; /* one byte shorter */
	XY_CHECK_EQ(xy_conn_send(T.cli.c, XY_MSG_STATUS_REPLY, &m), 0);
	free(json);
	run_and_teardown();
	XY_CHECK_EQ(T.srv.msgs, 2);
	XY_CHECK_EQ(T.srv.types[1], XY_MSG_STATUS_REPLY);
	XY_CHECK_EQ(T.srv.role, XY_ROLE_STATUS);
}

/* TLS (tls.h): a manager's context from a fresh CA directory, and a
 * client's that verifies it against that CA's certificate (or
 * another's). */
static SSL_CTX *tls_server(const char *name)
{
	char dir[4200], err[256];
	snprintf(dir, sizeof dir, "%s/%s", xy_test_tmpdir(), name);
	SSL_CTX *ctx = xy_tls_manager_ctx(dir, NULL, err, sizeof err);
	if (!ctx)
		fprintf(stderr, "%s\n", err);
	XY_CHECK(ctx != NULL);
	return ctx;
}

static SSL_CTX *tls_client(const char *name)
{
	char ca[4200], err[256];
	snprintf(ca, sizeof ca, "%s/%s/ca.crt", xy_test_tmpdir(), name);
	SSL_CTX *ctx = xy_tls_client_ctx(ca, err, sizeof err);
	XY_CHECK(ctx != NULL);
	return ctx;
}

/* The handshake, held messages and a frame near the limit (many records
 * and reads), all inside TLS. */
static void t_tls_handshake_and_messages(void)
{
	setup(2);
	T.srv_tls = tls_server("ca");
	SSL_CTX *cli = tls_client("ca");
	struct xy_conn_opts o = {secret, strlen(secret), XY_ROLE_WORKER,
				 on_ready, on_msg, on_close, &T.cli};
	o.tls = cli;
	T.cli.c = xy_conn_connect(&T.loop, "127.0.0.1", T.port, &o);
	XY_CHECK(T.cli.c != NULL);
	union xy_msg m;
	memset(&m, 0, sizeof m);
	m.hello.name = "w1";
	m.hello.hostname = "h";
	XY_CHECK_EQ(xy_conn_send(T.cli.c, XY_MSG_HELLO, &m), 0);
	size_t n = XY_MAX_STATUS;
	char *json = malloc(n + 1);
	memset(json, 'j', n);
	json[n] = 0;
	union xy_msg big = {.status_reply = {json}};
	XY_CHECK_EQ(xy_conn_send(T.cli.c, XY_MSG_STATUS_REPLY, &big), 0);
	free(json);
	m.cancel.task_id = 7;
	XY_CHECK_EQ(xy_conn_send(T.cli.c, XY_MSG_CANCEL, &m), 0);
	run_and_teardown();
	XY_CHECK_EQ(T.srv.ready, 1);
	XY_CHECK_EQ(T.cli.ready, 1);
	XY_CHECK_EQ(T.srv.msgs, 3);
	XY_CHECK_EQ(T.srv.types[0], XY_MSG_HELLO);
	XY_CHECK_EQ(T.srv.types[1], XY_MSG_STATUS_REPLY);
	XY_CHECK_EQ(T.srv.types[2], XY_MSG_CANCEL);
	XY_CHECK_EQ(T.srv.last_task, 7);
	XY_CHECK_EQ(T.cli.last_task, 4242);
	XY_CHECK(!strcmp(T.cli.reason, "client done"));
	SSL_CTX_free(T.srv_tls);
	SSL_CTX_free(cli);
}

/* Inside TLS, a wrong secret is refused as before. */
static void t_tls_wrong_secret(void)
{
	setup(2);
	T.srv_tls = tls_server("ca");
	SSL_CTX *cli = tls_client("ca");
	struct xy_conn_opts o = {"wrong", 5, XY_ROLE_WORKER, on_ready, on_msg,
				 on_close, &T.cli};
	o.tls = cli;
	T.cli.c = xy_conn_connect(&T.loop, "127.0.0.1", T.port, &o);
	run_and_teardown();
	XY_CHECK_EQ(T.srv.ready + T.cli.ready, 0);
	XY_CHECK(!strcmp(T.srv.reason, "bad secret"));
	XY_CHECK_EQ(T.cli.refused, 1);
	SSL_CTX_free(T.srv_tls);
	SSL_CTX_free(cli);
}

/* A client that trusts another CA refuses the server: for good. */
static void t_tls_other_ca(void)
{
	setup(2);
	T.srv_tls = tls_server("ca");
	SSL_CTX_free(tls_server("other")); /* makes other/ca.crt */
	SSL_CTX *cli = tls_client("other");
	struct xy_conn_opts o = {secret, strlen(secret), XY_ROLE_WORKER,
				 on_ready, on_msg, on_close, &T.cli};
	o.tls = cli;
	T.cli.c = xy_conn_connect(&T.loop, "127.0.0.1", T.port, &o);
	run_and_teardown();
	XY_CHECK_EQ(T.srv.ready + T.cli.ready, 0);
	XY_CHECK(strstr(T.cli.reason, "certificate verify failed") != NULL);
	XY_CHECK_EQ(T.cli.refused, 1);
	SSL_CTX_free(T.srv_tls);
	SSL_CTX_free(cli);
}

/* A TLS client and a plain server: the client says why. */
static void t_tls_client_plain_server(void)
{
	setup(2);
	SSL_CTX_free(tls_server("ca")); /* makes ca/ca.crt */
	SSL_CTX *cli = tls_client("ca");
	struct xy_conn_opts o = {secret, strlen(secret), XY_ROLE_WORKER,
				 on_ready, on_msg, on_close, &T.cli};
	o.tls = cli;
	T.cli.c = xy_conn_connect(&T.loop, "127.0.0.1", T.port, &o);
	run_and_teardown();
	XY_CHECK_EQ(T.srv.ready + T.cli.ready, 0);
	XY_CHECK(strstr(T.cli.reason, "does not speak TLS") != NULL);
	XY_CHECK(strstr(T.srv.reason, "speaks TLS") != NULL);
	XY_CHECK_EQ(T.cli.refused, 1);
	SSL_CTX_free(cli);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_handshake_and_messages),
		XY_TEST(t_wrong_secret),
		XY_TEST(t_connect_refused),
		XY_TEST(t_refused_or_not),
		XY_TEST_T(t_handshake_timeout, 20),
		XY_TEST(t_preauth_oversized_frame),
		XY_TEST(t_bad_frame_after_auth),
		XY_TEST(t_mac_refuses),
		XY_TEST(t_close_inside_on_msg),
		XY_TEST(t_frames_split_across_reads),
		XY_TEST(t_large_messages),
		XY_TEST(t_tls_handshake_and_messages),
		XY_TEST(t_tls_wrong_secret),
		XY_TEST(t_tls_other_ca),
		XY_TEST(t_tls_client_plain_server),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
