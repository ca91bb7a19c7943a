/*
 * test_xfer.c: unit tests for xfer.h: a transfer server on loopback and
 * fetches that succeed, are refused, or find nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "harness.h"
#include "object.h"
#include "util.h"
#include "xfer.h"

static const char secret[] = "transfer secret";

/* The objects the test server holds. */
static struct {
	uint8_t id[XY_ID_LEN];
	char path[4096];
	uint8_t kind;
	uint64_t size;
} objs[4];
static int n_objs;
static int lookups;

static int lookup(void *arg, const uint8_t id[XY_ID_LEN], char *path,
		  size_t pathlen, uint8_t *kind)
{
	__atomic_add_fetch(&lookups, 1, __ATOMIC_SEQ_CST);
	XY_CHECK(arg == &objs);
	for (int i = 0; i < n_objs; i++) {
		if (memcmp(objs[i].id, id, XY_ID_LEN) == 0) {
			snprintf(path, pathlen, "%s", objs[i].path);
			*kind = objs[i].kind;
			return 0;
		}
	}
	return -1;
}

static void put_file(const char *rel, const char *s)
{
	int fd = open(xy_test_path(rel), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	XY_CHECK(fd >= 0);
	XY_CHECK_EQ(write(fd, s, strlen(s)), strlen(s));
	close(fd);
}

static int add_obj(const char *rel)
{
	char err[256];
	int i = n_objs++;
	snprintf(objs[i].path, sizeof objs[i].path, "%s", xy_test_path(rel));
	XY_CHECK_EQ(xy_object_hash(objs[i].path, objs[i].id, &objs[i].kind,
				   &objs[i].size, err, sizeof err), 0);
	return i;
}

static struct xy_xfer_server *start(void)
{
	char err[256];
	n_objs = 0;
	XY_CHECK_EQ(xy_mkdir_p(xy_test_path("src/dir/sub")), 0);
	put_file("src/file.txt", "file body\n");
	put_file("src/dir/one", "1");
	put_file("src/dir/sub/two", "22");
	add_obj("src/file.txt");
	add_obj("src/dir");
	struct xy_xfer_server *s = xy_xfer_server_start(
		"127.0.0.1", 0, secret, strlen(secret), lookup, &objs, err,
		sizeof err);
	XY_CHECK(s != NULL);
	XY_CHECK(xy_xfer_server_port(s) > 0);
	return s;
}

static void token(const uint8_t id[XY_ID_LEN], uint8_t tok[XY_TOKEN_LEN])
{
	xy_token_make(secret, strlen(secret), id, ((uint64_t)time(NULL) + 60) * 1000000ull, "w1",
		      tok);
}

static void t_fetch_file_and_dir(void)
{
	struct xy_xfer_server *s = start();
	int port = xy_xfer_server_port(s);
	uint8_t tok[XY_TOKEN_LEN];
	uint64_t bytes = 0;
	char err[256];

	token(objs[0].id, tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 0,
				  objs[0].id, tok, "w1", xy_test_path("got.txt"), 1, &bytes,
				  err, sizeof err), XY_OBJ_OK);
	XY_CHECK_EQ(bytes, objs[0].size);
	size_t n;
	char *body = xy_read_file(xy_test_path("got.txt"), 1024, &n);
	XY_CHECK(body && !strcmp(body, "file body\n"));
	free(body);
	struct stat st;
	XY_CHECK_EQ(stat(xy_test_path("got.txt"), &st), 0);
	XY_CHECK_EQ(st.st_mode & 0777, 0555);

	token(objs[1].id, tok);
	XY_CHECK_EQ(xy_xfer_fetch("localhost", port, secret, strlen(secret), 0,
				  objs[1].id, tok, "w1", xy_test_path("gotdir"), 0, &bytes,
				  err, sizeof err), XY_OBJ_OK);
	XY_CHECK_EQ(bytes, objs[1].size);
	body = xy_read_file(xy_test_path("gotdir/sub/two"), 1024, &n);
	XY_CHECK(body && !strcmp(body, "22"));
	free(body);
	uint8_t id[XY_ID_LEN];
	XY_CHECK_EQ(xy_object_hash(xy_test_path("gotdir"), id, NULL, NULL, err,
				   sizeof err), 0);
	XY_CHECK(!memcmp(id, objs[1].id, XY_ID_LEN));
	/* The server counts a stream once it is written, which may be a
	 * moment after the client has read it. */
	uint64_t want = objs[0].size + objs[1].size, t0 = xy_mono_us();
	while (xy_xfer_server_bytes_sent(s) != want &&
	       xy_mono_us() - t0 < 2000000)
		usleep(1000);
	XY_CHECK_EQ(xy_xfer_server_bytes_sent(s), want);
	xy_xfer_server_stop(s);
	xy_test_check_no_leaks();
}

static void t_wrong_secret(void)
{
	struct xy_xfer_server *s = start();
	uint8_t tok[XY_TOKEN_LEN];
	char err[256];
	token(objs[0].id, tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", xy_xfer_server_port(s), "nope",
				  4, 0, objs[0].id, tok, "w1", xy_test_path("got"), 1, NULL,
				  err, sizeof err), XY_OBJ_DENIED);
	XY_CHECK(strstr(err, "bad secret"));
	XY_CHECK(access(xy_test_path("got"), F_OK) < 0);
	XY_CHECK_EQ(lookups, 0);
	XY_CHECK_EQ(xy_xfer_server_bytes_sent(s), 0);
	xy_xfer_server_stop(s);
}

static void t_bad_token(void)
{
	struct xy_xfer_server *s = start();
	int port = xy_xfer_server_port(s);
	uint8_t tok[XY_TOKEN_LEN];
	char err[256];
	/* A token for another object. */
	token(objs[1].id, tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 0,
				  objs[0].id, tok, "w1", xy_test_path("got"), 1, NULL, err,
				  sizeof err), XY_OBJ_DENIED);
	XY_CHECK(strstr(err, "token"));
	/* Expired. */
	xy_token_make(secret, strlen(secret), objs[0].id, ((uint64_t)time(NULL) - 10) * 1000000ull, "w1", tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 0,
				  objs[0].id, tok, "w1", xy_test_path("got"), 1, NULL, err,
				  sizeof err), XY_OBJ_DENIED);
	/* Made with another secret. */
	xy_token_make("other", 5, objs[0].id, ((uint64_t)time(NULL) + 60) * 1000000ull, "w1", tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 0,
				  objs[0].id, tok, "w1", xy_test_path("got"), 1, NULL, err,
				  sizeof err), XY_OBJ_DENIED);
	XY_CHECK(access(xy_test_path("got"), F_OK) < 0);
	XY_CHECK_EQ(lookups, 0);
	xy_xfer_server_stop(s);
	xy_test_check_no_leaks();
}

static void t_missing_object(void)
{
	struct xy_xfer_server *s = start();
	uint8_t id[XY_ID_LEN], tok[XY_TOKEN_LEN];
	char err[256];
	memset(id, 0x77, sizeof id);
	token(id, tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", xy_xfer_server_port(s), secret,
				  strlen(secret), 0, id, tok, "w1", xy_test_path("got"), 1,
				  NULL, err, sizeof err), XY_OBJ_NOT_FOUND);
	XY_CHECK_EQ(lookups, 1);
	XY_CHECK(access(xy_test_path("got"), F_OK) < 0);
	xy_xfer_server_stop(s);
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

static void t_several_gets_one_connection(void)
{
	struct xy_xfer_server *s = start();
	int fd = raw_connect(xy_xfer_server_port(s));
	char err[256];
	XY_CHECK_EQ(xy_auth_client_fd(fd, secret, strlen(secret),
				      XY_ROLE_TRANSFER, 2000, err, sizeof err),
		    0);
	union xy_msg m;
	/* Missing, then present: the connection survives NOT_FOUND. */
	memset(&m, 0, sizeof m);
	m.get.name = "w1";
	memset(m.get.id, 0x55, XY_ID_LEN);
	token(m.get.id, m.get.token);
	XY_CHECK_EQ(xy_fd_send_msg(fd, XY_MSG_GET, &m, 2000, err, sizeof err),
		    0);
	XY_CHECK_EQ(xy_fd_recv_msg(fd, XY_MSG_OBJECT, &m, 1024, 2000, err,
				   sizeof err), 0);
	XY_CHECK_EQ(m.object.status, XY_OBJ_NOT_FOUND);
	for (int i = 0; i < 2; i++) {
		memset(&m, 0, sizeof m);
		m.get.name = "w1";
		memcpy(m.get.id, objs[i].id, XY_ID_LEN);
		token(m.get.id, m.get.token);
		XY_CHECK_EQ(xy_fd_send_msg(fd, XY_MSG_GET, &m, 2000, err,
					   sizeof err), 0);
		XY_CHECK_EQ(xy_fd_recv_msg(fd, XY_MSG_OBJECT, &m, 1024, 2000,
					   err, sizeof err), 0);
		XY_CHECK_EQ(m.object.status, XY_OBJ_OK);
		XY_CHECK_EQ(m.object.kind, objs[i].kind);
		XY_CHECK_EQ(m.object.size, objs[i].size);
		XY_CHECK_EQ(xy_object_recv(fd, m.object.kind, m.object.size,
					   objs[i].id, xy_test_path(i ? "d" : "f"), 1,
					   2000, NULL, err, sizeof err),
			    XY_OBJ_OK);
	}
	/* A bad token closes the connection after DENIED. */
	memset(&m, 0, sizeof m);
	m.get.name = "w1";
	memset(m.get.token, 0, XY_TOKEN_LEN);
	XY_CHECK_EQ(xy_fd_send_msg(fd, XY_MSG_GET, &m, 2000, err, sizeof err),
		    0);
	XY_CHECK_EQ(xy_fd_recv_msg(fd, XY_MSG_OBJECT, &m, 1024, 2000, err,
				   sizeof err), 0);
	XY_CHECK_EQ(m.object.status, XY_OBJ_DENIED);
	char c;
	XY_CHECK_EQ(xy_fd_read_all(fd, &c, 1, 2000), -1);
	XY_CHECK_EQ(errno, ECONNRESET);
	close(fd);
	xy_xfer_server_stop(s);
	xy_test_check_no_leaks();
}

static void t_wrong_role(void)
{
	struct xy_xfer_server *s = start();
	int fd = raw_connect(xy_xfer_server_port(s));
	char err[256];
	XY_CHECK_EQ(xy_auth_client_fd(fd, secret, strlen(secret),
				      XY_ROLE_WORKER, 2000, err, sizeof err),
		    0);
	union xy_msg m;
	XY_CHECK_EQ(xy_fd_recv_msg(fd, XY_MSG_OBJECT, &m, 1024, 2000, err,
				   sizeof err), -1);
	XY_CHECK(strstr(err, "wrong role"));
	close(fd);
	xy_xfer_server_stop(s);
}

static void t_stop_with_open_connections(void)
{
	struct xy_xfer_server *s = start();
	int fds[8];
	char err[256];
	for (int i = 0; i < 8; i++) {
		fds[i] = raw_connect(xy_xfer_server_port(s));
		if (i % 2 == 0) /* half authenticated and idle */
			XY_CHECK_EQ(xy_auth_client_fd(fds[i], secret,
						      strlen(secret),
						      XY_ROLE_TRANSFER, 2000,
						      err, sizeof err), 0);
	}
	uint64_t t0 = xy_mono_us();
	xy_xfer_server_stop(s);
	XY_CHECK(xy_mono_us() - t0 < 3000000);
	for (int i = 0; i < 8; i++) {
		char c;
		/* Each sees EOF (after a CHALLENGE it did not read). */
		while (xy_fd_read_all(fds[i], &c, 1, 2000) == 0)
			;
		XY_CHECK(errno == ECONNRESET);
		close(fds[i]);
	}
	xy_xfer_server_stop(NULL);
	xy_test_check_no_leaks();
}

static void t_connect_refused(void)
{
	struct xy_xfer_server *s = start();
	int port = xy_xfer_server_port(s);
	xy_xfer_server_stop(s);
	uint8_t id[XY_ID_LEN] = {0}, tok[XY_TOKEN_LEN] = {0};
	char err[256];
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 0,
				  id, tok, "w1", xy_test_path("got"), 1, NULL, err,
				  sizeof err), XY_OBJ_FAILED);
	XY_CHECK(strstr(err, "cannot connect"));
	/* Port in use: start fails with a reason. */
	struct xy_xfer_server *a = start();
	XY_CHECK(xy_xfer_server_start("127.0.0.1", xy_xfer_server_port(a),
				      secret, 1, lookup, &objs, err,
				      sizeof err) == NULL);
	XY_CHECK(strstr(err, "cannot listen"));
	xy_xfer_server_stop(a);
	xy_test_check_no_leaks();
}

/* TLS keyed by the secret (tls.h, "transfers"): a file and a directory
 * come whole over it; a TLS client with another secret and a TLS client
 * of a plain server are refused before any GET, and the host is blamed.
 * (A plain client of a TLS server waits for a CHALLENGE that never comes,
 * as the server waits for a hello: both give up at the deadline.) */
static void t_tls_transfers(void)
{
	struct xy_xfer_server *s = start();
	int port = xy_xfer_server_port(s);
	uint8_t tok[XY_TOKEN_LEN], blame = 0;
	uint64_t bytes = 0;
	char err[256];

	XY_CHECK_EQ(xy_xfer_server_tls(s, err, sizeof err), 0);
	token(objs[0].id, tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 1,
				  objs[0].id, tok, "w1", xy_test_path("t.txt"),
				  1, &bytes, err, sizeof err), XY_OBJ_OK);
	XY_CHECK_EQ(bytes, objs[0].size);
	size_t n;
	char *body = xy_read_file(xy_test_path("t.txt"), 1024, &n);
	XY_CHECK(body && !strcmp(body, "file body\n"));
	free(body);
	token(objs[1].id, tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 1,
				  objs[1].id, tok, "w1", xy_test_path("tdir"),
				  0, &bytes, err, sizeof err), XY_OBJ_OK);
	body = xy_read_file(xy_test_path("tdir/sub/two"), 1024, &n);
	XY_CHECK(body && !strcmp(body, "22"));
	free(body);

	int before = __atomic_load_n(&lookups, __ATOMIC_SEQ_CST);
	token(objs[0].id, tok);
	XY_CHECK(xy_xfer_fetch_blame("127.0.0.1", port, "another secret", 14,
				     1, objs[0].id, tok, "w1",
				     xy_test_path("p2"), 1, NULL, &blame, err,
				     sizeof err) != XY_OBJ_OK);
	XY_CHECK_EQ(blame, XY_BLAME_HOST);
	XY_CHECK(strstr(err, "TLS handshake failed") != NULL);
	XY_CHECK_EQ(__atomic_load_n(&lookups, __ATOMIC_SEQ_CST), before);
	XY_CHECK(access(xy_test_path("p2"), F_OK) != 0);
	xy_xfer_server_stop(s);

	s = start();
	port = xy_xfer_server_port(s);
	XY_CHECK(xy_xfer_fetch_blame("127.0.0.1", port, secret, strlen(secret),
				     1, objs[0].id, tok, "w1",
				     xy_test_path("p3"), 1, NULL, &blame, err,
				     sizeof err) != XY_OBJ_OK);
	XY_CHECK_EQ(blame, XY_BLAME_HOST);
	xy_xfer_server_stop(s);

	/* A server that is not one of ours (it lacks the secret): the
	 * fetch is refused in the handshake, before the token is sent. */
	s = xy_xfer_server_start("127.0.0.1", 0, "rogue", 5, lookup, &objs,
				 err, sizeof err);
	XY_CHECK(s != NULL);
	XY_CHECK_EQ(xy_xfer_server_tls(s, err, sizeof err), 0);
	before = __atomic_load_n(&lookups, __ATOMIC_SEQ_CST);
	XY_CHECK(xy_xfer_fetch_blame("127.0.0.1", xy_xfer_server_port(s),
				     secret, strlen(secret), 1, objs[0].id,
				     tok, "w1", xy_test_path("p4"), 1, NULL,
				     &blame, err, sizeof err) != XY_OBJ_OK);
	XY_CHECK_EQ(blame, XY_BLAME_HOST);
	XY_CHECK_EQ(__atomic_load_n(&lookups, __ATOMIC_SEQ_CST), before);
	XY_CHECK(access(xy_test_path("p4"), F_OK) != 0);
	xy_xfer_server_stop(s);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_fetch_file_and_dir),
		XY_TEST(t_tls_transfers),
		XY_TEST(t_wrong_secret),
		XY_TEST(t_bad_token),
		XY_TEST(t_missing_object),
		XY_TEST(t_several_gets_one_connection),
		XY_TEST(t_wrong_role),
		XY_TEST(t_stop_with_open_connections),
		XY_TEST(t_connect_refused),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
