/*
 * test_ep_spawn.c: the endpoint's spawner (src/cli/spawn.c) against a
 * front that lies. The spawner serves `xylem endpoint enroll` for the
 * peer of the connection the front passes, whose request it must read
 * from that connection itself: a front that passes another user's
 * connection with a request of its own gets nothing.
 */
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ep_ca.h"
#include "harness.h"
#include "spawn.h"

/* A request (DER, malloc'd, its length in *n) for a new key. */
static unsigned char *request(int *n)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;

	XY_CHECK(key && req);
	XY_CHECK(X509_REQ_set_pubkey(req, key) == 1);
	XY_CHECK(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	*n = i2d_X509_REQ(req, &der);
	XY_CHECK(*n > 0);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return der;
}

/* "enroll BASE64\n" for a new request, malloc'd. */
static char *enroll_line(void)
{
	int n;
	unsigned char *der = request(&n);
	char *line = malloc((size_t)(n + 2) / 3 * 4 + 16);

	strcpy(line, "enroll ");
	EVP_EncodeBlock((unsigned char *)line + 7, der, n);
	strcat(line, "\n");
	OPENSSL_free(der);
	return line;
}

static struct xy_ep_config cfg;
static char sock_path[108];
static int lfd, front;
static pid_t spawner;

/* A spawner, as the endpoint forks it, whose front is this test. */
static void start(void)
{
	char err[256];
	int sp[2];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *st = xy_test_path("state");

	XY_CHECK(chmod(xy_test_tmpdir(), 0711) == 0); /* nobody connects */

	XY_CHECK(xy_ep_ca_init(st, err, sizeof err) == 0);
	snprintf(sock_path, sizeof sock_path, "%s", xy_test_path("ep.sock"));
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	XY_CHECK(lfd >= 0);
	XY_CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
	XY_CHECK(chmod(sock_path, 0777) == 0);
	XY_CHECK(listen(lfd, 8) == 0);
	cfg.uid_min = 1000;
	cfg.cert_days = 1;
	cfg.state = st;
	cfg.listen = "127.0.0.1:9";
	XY_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) ==
		 0);
	spawner = fork();
	XY_CHECK(spawner >= 0);
	if (spawner == 0) {
		close(sp[0]);
		_exit(xy_cli_spawn_serve(sp[1], &cfg, "/bin/false", sock_path,
					 1));
	}
	close(sp[1]);
	front = sp[0];
}

static void stop(void)
{
	close(front);
	XY_CHECK(waitpid(spawner, NULL, 0) == spawner);
	close(lfd);
}

/* A user's connection to the endpoint's socket: the user's end into
 * *mine, the front's (accepted) end returned. As root, the user is
 * nobody (root may not use the endpoint); else this test's own. */
static int user_connects(int *mine)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), status;
	pid_t pid;

	XY_CHECK(fd >= 0);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	/* connect() records the caller's credentials: a child's. */
	if ((pid = fork()) == 0) {
		struct passwd *pw = getpwnam("nobody");
		if (geteuid() == 0 && (!pw || setgid(pw->pw_gid) < 0 ||
				       setuid(pw->pw_uid) < 0))
			_exit(2);
		_exit(connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0);
	}
	XY_CHECK(waitpid(pid, &status, 0) == pid);
	XY_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	*mine = fd;
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	XY_CHECK(c >= 0);
	return c;
}

/* The spawner's whole answer on the user's end. */
static void answer(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t k;
	struct timeval tv = {.tv_sec = 20};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while (n < len - 1 && (k = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
}

/* The front passes a user's connection, on which the user asked for
 * something else ("python"), with a request of its own (the message's
 * data, as the front passed one before): no
 * certificate comes. The user's own request still gets one. */
static void t_front_cannot_enroll_for_another_user(void)
{
	char buf[16384];
	char *own = enroll_line();
	int mine, c, n;
	/* What the front decoded once and passed: a request, DER. */
	unsigned char *forged = request(&n);

	start();
	/* The lie: a request of the front's with the user's connection. */
	c = user_connects(&mine);
	XY_CHECK(write(mine, "python\n", 7) == 7);
	usleep(100000);
	XY_CHECK(xy_cli_spawn_pass_data(front, XY_EP_OP_ENROLL, forged,
					(size_t)n, c) == 0);
	close(c);
	answer(mine, buf, sizeof buf);
	fprintf(stderr, "the forged request's answer: %.200s\n", buf);
	XY_CHECK(strncmp(buf, "error ", 6) == 0);
	XY_CHECK(!strstr(buf, "BEGIN CERTIFICATE"));
	close(mine);

	/* Nothing sent yet on the connection: nothing either. */
	c = user_connects(&mine);
	XY_CHECK(xy_cli_spawn_pass_data(front, XY_EP_OP_ENROLL, forged,
					(size_t)n, c) == 0);
	close(c);
	answer(mine, buf, sizeof buf);
	XY_CHECK(strncmp(buf, "error ", 6) == 0);
	close(mine);

	/* The user's own request, read by the spawner: a certificate. */
	c = user_connects(&mine);
	XY_CHECK(write(mine, own, strlen(own)) == (ssize_t)strlen(own));
	usleep(100000);
	XY_CHECK(xy_cli_spawn_pass(front, XY_EP_OP_ENROLL, c) == 0);
	close(c);
	answer(mine, buf, sizeof buf);
	XY_CHECK(strncmp(buf, "ok enrolled ", 12) == 0);
	XY_CHECK(strstr(buf, "BEGIN CERTIFICATE"));
	close(mine);
	stop();
	OPENSSL_free(forged);
	free(own);
}

/* The caps on a user's workers and cores size what the spawner starts:
 * the user's own line over the global one, cores over workers. */
static void t_caps_size_a_user_s_workers(void)
{
	static struct xy_ep_config conf;
	struct xy_ep_size sz;
	char err[256];

	memset(&conf, 0, sizeof conf);
	conf.workers = 6;
	conf.cores_per_worker = 2;
	XY_CHECK(xy_cli_ep_limits_line(&conf, "max_workers", "4", err,
				       sizeof err) == 1);
	XY_CHECK(xy_cli_ep_limits_line(&conf, "user alice", "max_cores 5",
				       err, sizeof err) == 1);
	XY_CHECK(xy_cli_ep_limits_line(&conf, "user bob", "max_workers 9, "
				       "max_cores 64", err, sizeof err) == 1);
	XY_CHECK(xy_cli_ep_limits_line(&conf, "user bob", "max_workers 1",
				       err, sizeof err) == -1);
	XY_CHECK(strstr(err, "set twice"));
	XY_CHECK(xy_cli_ep_limits_line(&conf, "user carol", "max_workers -1",
				       err, sizeof err) == -1);
	XY_CHECK(xy_cli_ep_limits_line(&conf, "max_cores", "0", err,
				       sizeof err) == -1);
	/* Anyone: 6 workers cut to 4, of 2 cores. */
	xy_cli_ep_limits_size(&conf, "dave", 0, &sz);
	XY_CHECK(sz.workers == 4 && sz.cores == 2 && sz.capped);
	XY_CHECK(sz.max_workers == 4 && sz.max_cores == 0);
	/* alice: 4 workers (the global cap), 5 cores: 2 of 2 cores. */
	xy_cli_ep_limits_size(&conf, "alice", 1, &sz);
	XY_CHECK(sz.workers == 2 && sz.cores == 2 && sz.capped);
	XY_CHECK(sz.max_workers == 4 && sz.max_cores == 5);
	/* bob: his own caps leave the configuration's 6 of 2 as they are. */
	xy_cli_ep_limits_size(&conf, "bob", 0, &sz);
	XY_CHECK(sz.workers == 6 && sz.cores == 2 && !sz.capped);
	/* A worker wider than the cores cap is narrowed to it. */
	conf.cores_per_worker = 8;
	xy_cli_ep_limits_size(&conf, "alice", 0, &sz);
	XY_CHECK(sz.workers == 1 && sz.cores == 5 && sz.capped);
	/* No cores_per_worker: the manager's workers share the cap. */
	conf.cores_per_worker = 0;
	xy_cli_ep_limits_size(&conf, "alice", 0, &sz);
	XY_CHECK(sz.workers == 4 && sz.cores == 1);
	xy_cli_ep_limits_size(&conf, "dave", 0, &sz);
	XY_CHECK(sz.workers == 4 && sz.cores == 0);
	for (int i = 0; i < conf.n_session_args; i++)
		if (i % 2)
			free(conf.session_args[i]);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_front_cannot_enroll_for_another_user),
		XY_TEST(t_caps_size_a_user_s_workers),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
