/*
 * ep_tls.c: the front's TLS listener (ep_tls.h, docs/endpoint.md,
 * "Remote users"). It runs in the front, unprivileged, a thread for each
 * connection: TLS 1.3 with a client certificate of the endpoint's CA (the
 * handshake checks the signature and the validity), the revocation list
 * (read on every connection), one request line ("python"), then the
 * spawner, which checks the certificate again by itself and hands back a
 * connection to that user's session server, made as the user. From then
 * on the thread relays bytes both ways until either side ends, the
 * client's certificate is revoked (the front's loop watches the list,
 * xy_ep_tls_watch), or the client stops answering TCP keepalive. One
 * source address gets a bounded share of the connections (struct
 * source), so that a flood from it does not lock the others out.
 */
#include "ep_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "ep_ca.h"
#include "spawn.h"
#include "tls.h"
#include "util.h"

#define WHO "xylem endpoint"
#define CONNS_MAX 1024      /* TLS clients at once, at most */
#define CONN_FDS 4          /* a client's descriptors, at most */
#define UNIX_FDS 320        /* kept for the Unix path and the rest */
#define HELLO_MS 5000       /* handshake and request line, together */
#define SPAWNER_MS 30000    /* the spawner's answer, a start included */
#define LINE_MAX_ 256
#define RELAY_BUF (64 * 1024)

#define RECHECK_MS 1000     /* a relay looks at revoke_gen so often */

static atomic_int n_conns;
static int conns_max; /* from RLIMIT_NOFILE, at the first accept */
/* Bumped by the front's loop (xy_ep_tls_watch) when the revocation list
 * changes: each relay then checks its certificate's serial again. */
static atomic_uint revoke_gen;

#define HELLOS_PER_ADDR 8 /* handshakes at once from one address */

/* The connections of one source address (an IPv4 address, or an IPv6
 * /64: one host's share of a network), so that a flood from one cannot
 * take every slot from the others. */
struct source {
	uint8_t key[16];
	int conns;  /* connections at once, relaying or not */
	int hellos; /* of them, before the relay: handshake, line, spawner */
};

static pthread_mutex_t sources_lock = PTHREAD_MUTEX_INITIALIZER;
static struct source sources[CONNS_MAX];
static int n_sources;

struct conn {
	const struct xy_ep_tls *t;
	int fd;
	uint8_t key[16]; /* its source's */
	int hello;       /* counted in its source's hellos */
	char peer[INET6_ADDRSTRLEN + 8];
};

/* The key of sa's source: an IPv4 address (mapped or not), or an IPv6
 * address's first 64 bits. */
static void source_key(const struct sockaddr_storage *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->ss_family == AF_INET) {
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->ss_family == AF_INET6) {
		const uint8_t *a =
			((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(
			    &((const struct sockaddr_in6 *)sa)->sin6_addr))
			memcpy(key + 12, a + 12, 4);
		else {
			memcpy(key, a, 8);
			key[15] = 6; /* not an IPv4 address's key */
		}
	}
}

/* Takes a slot of key's source for a new connection (in its
 * handshake): 0, or -1 if the source has HELLOS_PER_ADDR handshakes or
 * per_addr connections at once already. */
static int source_take(const uint8_t key[16], int per_addr)
{
	struct source *src = NULL;
	int rc = -1;

	pthread_mutex_lock(&sources_lock);
	for (int i = 0; i < n_sources && !src; i++)
		if (memcmp(sources[i].key, key, 16) == 0)
			src = &sources[i];
	if (!src && n_sources < CONNS_MAX) {
		src = &sources[n_sources++];
		*src = (struct source){0};
		memcpy(src->key, key, 16);
	}
	if (src && src->hellos < HELLOS_PER_ADDR && src->conns < per_addr) {
		src->hellos++;
		src->conns++;
		rc = 0;
	}
	pthread_mutex_unlock(&sources_lock);
	return rc;
}

/* Gives back c's handshake slot (hello: it relays now) or, with hello
 * 0, its connection's (it ended). */
static void source_give(struct conn *c, int hello)
{
	pthread_mutex_lock(&sources_lock);
	for (int i = 0; i < n_sources; i++) {
		struct source *src = &sources[i];
		if (memcmp(src->key, c->key, 16))
			continue;
		if (c->hello) {
			src->hellos--;
			c->hello = 0;
		}
		if (!hello && --src->conns == 0)
			*src = sources[--n_sources];
		break;
	}
	pthread_mutex_unlock(&sources_lock);
}

int xy_ep_tls_listen(const char *hostport, char *host, size_t hostlen,
		     int *port, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM},
			*ai = NULL;
	struct sockaddr_storage sa;
	socklen_t sl = sizeof sa;
	char ps[16];
	int fd = -1, one = 1, rc;

	if (xy_parse_hostport(hostport, host, hostlen, port) < 0)
		return xy_fail(err, errlen, EINVAL, "--listen wants HOST:PORT,"
			       " not '%s'", hostport);
	snprintf(ps, sizeof ps, "%d", *port);
	if ((rc = getaddrinfo(host, ps, &hints, &ai)) != 0)
		return xy_fail(err, errlen, EINVAL, "cannot resolve %s: %s",
			       host, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		xy_fail(err, errlen, errno, "cannot listen on %s: %s",
			hostport, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	*port = ntohs(sa.ss_family == AF_INET6
			      ? ((struct sockaddr_in6 *)&sa)->sin6_port
			      : ((struct sockaddr_in *)&sa)->sin_port);
	return fd;
}

static void set_timeout(int fd, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void say(SSL *ssl, const char *fmt, const char *arg)
{
	char line[1100];
	int n = snprintf(line, sizeof line, fmt, arg);
	if (n > 0)
		SSL_write(ssl, line, n < (int)sizeof line ? n : (int)sizeof line);
}

/* Waits for what ssl wants (after a call that returned r) until
 * deadline (xy_mono()): 0 to call again, or -1 (an error, or time up).
 * The socket is non-blocking: a client that sends a byte now and then
 * gets no more than HELLO_MS in all for its handshake and its line. */
static int wait_for(SSL *ssl, int fd, int r, double deadline)
{
	int e = SSL_get_error(ssl, r), ms;
	struct pollfd p = {.fd = fd};

	if (e == SSL_ERROR_WANT_READ)
		p.events = POLLIN;
	else if (e == SSL_ERROR_WANT_WRITE)
		p.events = POLLOUT;
	else
		return -1;
	for (;;) {
		ms = (int)((deadline - xy_mono()) * 1e3);
		if (ms <= 0)
			return -1;
		int k = poll(&p, 1, ms);
		if (k > 0)
			return 0;
		if (k == 0 || errno != EINTR)
			return -1;
	}
}

/* The request line, without its newline: 0, or -1 (closed, too long, or
 * not by deadline). A byte at a time: nothing after the newline is taken
 * from the stream (the client waits for the answer anyway). */
static int read_line(SSL *ssl, int fd, char *line, size_t max,
		     double deadline)
{
	size_t n = 0;
	while (n < max - 1) {
		int r = SSL_read(ssl, line + n, 1);
		if (r != 1) {
			if (wait_for(ssl, fd, r, deadline) < 0)
				return -1;
			continue;
		}
		if (line[n] == '\n') {
			line[n] = '\0';
			return 0;
		}
		n++;
	}
	return -1;
}

/* TCP keepalive on a client's connection: silent for idle seconds, it
 * is probed every idle / 4 (at least 1 s), and after 4 probes without
 * an answer the kernel fails it (ETIMEDOUT): a client that vanished
 * (a laptop that left, a cut network) does not hold its relay, its
 * thread and its session for ever. Writes left unacknowledged as long
 * fail it too (TCP_USER_TIMEOUT). */
static void set_keepalive(int fd, int idle)
{
	int one = 1, intvl = idle / 4 > 0 ? idle / 4 : 1, cnt = 4;
	unsigned user = (unsigned)(idle + 4 * intvl) * 1000u;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof user);
}

static void set_blocking(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, on ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

/* The spawner's answers on rp, until the connection to the session
 * server comes (its descriptor; the account's name into name) or a
 * refusal (why into why): the descriptor, or -1. */
static int spawner_answer(int rp, char *name, size_t nlen, char *why,
			  size_t wlen)
{
	for (;;) {
		char buf[1100];
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf - 1};
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} ctl;
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.b,
				     .msg_controllen = sizeof ctl.b};
		ssize_t n = recvmsg(rp, &msg, MSG_CMSG_CLOEXEC);
		int fd = -1;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(why, wlen, "the endpoint did not answer");
			return -1;
		}
		buf[n] = '\0';
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c;
		     c = CMSG_NXTHDR(&msg, c))
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_RIGHTS &&
			    c->cmsg_len == CMSG_LEN(sizeof(int)))
				memcpy(&fd, CMSG_DATA(c), sizeof fd);
		if (fd >= 0 && buf[0] == 'S' && !(msg.msg_flags & MSG_CTRUNC)) {
			snprintf(name, nlen, "%.*s", (int)nlen - 1, buf + 1);
			return fd;
		}
		if (fd >= 0)
			close(fd);
		buf[strcspn(buf, "\n")] = '\0';
		if (strncmp(buf, "ok ", 3) == 0)
			continue; /* started, or running: the connection comes */
		if (strncmp(buf, "error ", 6) == 0)
			snprintf(why, wlen, "%.*s", (int)wlen - 1, buf + 6);
		else
			snprintf(why, wlen, "cannot reach your session server: "
				 "%.*s", (int)wlen / 2, buf);
		return -1;
	}
}

/* Asks the spawner for cert's user's session server: its connection, or
 * -1 with why. */
static int ask_spawner(const struct xy_ep_tls *t, X509 *cert, char *name,
		       size_t nlen, char *why, size_t wlen)
{
	static __thread uint8_t data[XY_EP_DATA_MAX];
	unsigned char *p = data + 1;
	int rp[2], n = i2d_X509(cert, NULL), fd;

	if (n <= 0 || n > XY_EP_DATA_MAX - 1) {
		snprintf(why, wlen, "the certificate is too large");
		return -1;
	}
	data[0] = XY_EP_OP_PYTHON;
	i2d_X509(cert, &p);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rp) < 0) {
		snprintf(why, wlen, "the endpoint is out of descriptors");
		return -1;
	}
	if (xy_cli_spawn_pass_data(t->spawner, XY_EP_OP_TLS, data,
				   (size_t)n + 1, rp[1]) < 0) {
		snprintf(why, wlen, "the endpoint is busy: ask again");
		close(rp[0]);
		close(rp[1]);
		return -1;
	}
	close(rp[1]);
	set_timeout(rp[0], SPAWNER_MS);
	fd = spawner_answer(rp[0], name, nlen, why, wlen);
	close(rp[0]);
	return fd;
}

/* Is the serial of a relaying client revoked since the list last
 * changed (*gen: the generation it was checked at)? 1 if it is now. */
static int revoked_since(const struct conn *c, const char *serial,
			 const char *name, unsigned *gen)
{
	unsigned now = atomic_load(&revoke_gen);
	int rv;

	if (now == *gen)
		return 0;
	*gen = now;
	if ((rv = xy_ep_ca_revoked(c->t->state, serial)) < 0)
		fprintf(stderr, WHO ": cannot read the revocation list to "
			"check %s's open connection from %s (serial %s): kept "
			"until the list changes again\n", name, c->peer, serial);
	if (rv != 1)
		return 0;
	fprintf(stderr, WHO ": cut %s's TLS connection from %s: its "
		"certificate (serial %s) was revoked\n", name, c->peer, serial);
	return 1;
}

/* Bytes both ways between the client (ssl on net) and the session
 * server (sess) until either ends, or the client's certificate (serial,
 * of the account name) is revoked: the relay wakes every RECHECK_MS to
 * see whether the revocation list changed since generation gen (taken
 * before the connection's first check). */
static void relay(const struct conn *c, SSL *ssl, int sess,
		  const char *serial, const char *name, unsigned gen)
{
	char *buf = malloc(RELAY_BUF);
	int net = c->fd, net_err = 0;

	set_timeout(net, 0);
	while (buf) {
		struct pollfd p[2] = {{.fd = net, .events = POLLIN},
				      {.fd = sess, .events = POLLIN}};
		int k = 0;
		if (!SSL_pending(ssl) &&
		    (k = poll(p, 2, RECHECK_MS)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (revoked_since(c, serial, name, &gen))
			break;
		if (k == 0 && !SSL_pending(ssl))
			continue;
		if (SSL_pending(ssl) || p[0].revents) {
			socklen_t el = sizeof net_err;
			if ((p[0].revents & POLLERR) &&
			    getsockopt(net, SOL_SOCKET, SO_ERROR, &net_err,
				       &el) == 0 && net_err)
				break;
			int n = SSL_read(ssl, buf, RELAY_BUF);
			if (n <= 0 && SSL_get_error(ssl, n) == SSL_ERROR_SYSCALL)
				net_err = errno;
			if (n <= 0 || xy_write_all(sess, buf, (size_t)n) < 0)
				break;
		}
		if (p[1].revents) {
			ssize_t n = read(sess, buf, RELAY_BUF);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				SSL_shutdown(ssl); /* the server ended it */
				break;
			}
			int w = SSL_write(ssl, buf, (int)n);
			if (w != n) {
				if (SSL_get_error(ssl, w) == SSL_ERROR_SYSCALL)
					net_err = errno;
				break;
			}
		}
	}
	free(buf);
	if (net_err == ETIMEDOUT)
		fprintf(stderr, WHO ": released %s's relay from %s: the client "
			"did not answer (keepalive, %d s)\n", name, c->peer,
			c->t->keepalive);
}

void xy_ep_tls_watch(const struct xy_ep_tls *t)
{
	static struct stat last;
	static int seen;
	static double next;
	char path[4300];
	struct stat st;

	if (xy_mono() < next)
		return;
	next = xy_mono() + 0.2;
	snprintf(path, sizeof path, "%s/revoked", t->state);
	if (stat(path, &st) < 0)
		memset(&st, 0, sizeof st);
	if (seen && st.st_ino == last.st_ino && st.st_size == last.st_size &&
	    st.st_mtim.tv_sec == last.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == last.st_mtim.tv_nsec)
		return;
	if (seen)
		atomic_fetch_add(&revoke_gen, 1);
	seen = 1;
	last = st;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	SSL *ssl = SSL_new(c->t->ctx);
	char err[512], line[LINE_MAX_], serial[XY_EP_SERIAL_MAX] = "?";
	char name[64] = "";
	X509 *cert;
	int sess = -1, rv = 0;
	unsigned gen = atomic_load(&revoke_gen); /* before the check below */

	double deadline = xy_mono() + HELLO_MS / 1e3;
	int r;

	/* The handshake and the line by a deadline, without blocking;
	 * answers and the relay, blocking (writes within HELLO_MS). */
	set_timeout(c->fd, HELLO_MS);
	set_blocking(c->fd, 0);
	if (!ssl || SSL_set_fd(ssl, c->fd) != 1) {
		fprintf(stderr, WHO ": refused a TLS client at %s: %s\n",
			c->peer, xy_tls_error(ssl, err, sizeof err));
		goto done;
	}
	while ((r = SSL_accept(ssl)) != 1)
		if (wait_for(ssl, c->fd, r, deadline) < 0) {
			fprintf(stderr, WHO ": refused a TLS client at %s: "
				"%s\n", c->peer,
				SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ ||
				SSL_get_error(ssl, r) == SSL_ERROR_WANT_WRITE
					? "no handshake within 5 s"
					: xy_tls_error(ssl, err, sizeof err));
			goto done;
		}
	cert = SSL_get0_peer_certificate(ssl);
	if (!cert || xy_ep_ca_serial(cert, serial) < 0 ||
	    (rv = xy_ep_ca_revoked(c->t->state, serial)) != 0) {
		snprintf(err, sizeof err, "your certificate (serial %s) is %s",
			 serial, cert && rv < 0 ? "not checkable now (the "
			 "revocation list cannot be read)" : "revoked");
		goto refuse;
	}
	r = read_line(ssl, c->fd, line, sizeof line, deadline);
	set_blocking(c->fd, 1);
	if (r < 0) {
		snprintf(err, sizeof err, "no request within %d s",
			 HELLO_MS / 1000);
		goto refuse;
	}
	if (strcmp(line, "python") != 0) {
		snprintf(err, sizeof err, "unknown request (want 'python'; "
			 "who you are is your certificate's to say)");
		goto refuse;
	}
	if ((sess = ask_spawner(c->t, cert, name, sizeof name, err,
				sizeof err)) < 0)
		goto refuse;
	say(ssl, "ok %s\n", name);
	source_give(c, 1); /* relaying: its source may start another */
	relay(c, ssl, sess, serial, name, gen);
	goto done;
refuse:
	set_blocking(c->fd, 1);
	fprintf(stderr, WHO ": refused a TLS client at %s (certificate serial "
		"%s): %s\n", c->peer, serial, err);
	say(ssl, "error %s\n", err);
	SSL_shutdown(ssl);
done:
	ERR_clear_error();
	if (sess >= 0)
		close(sess);
	SSL_free(ssl);
	close(c->fd);
	source_give(c, 0);
	free(c);
	atomic_fetch_sub(&n_conns, 1);
	return NULL;
}

/* So many clients at once that each has its descriptors, and the Unix
 * path (the front's pending clients) keeps UNIX_FDS (or half the limit,
 * if that is less). */
static int max_conns(void)
{
	struct rlimit rl;
	long n = CONNS_MAX;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY) {
		long lim = (long)rl.rlim_cur,
		     keep = UNIX_FDS < lim / 2 ? UNIX_FDS : lim / 2;
		n = (lim - keep) / CONN_FDS;
	}
	return n < 1 ? 1 : n > CONNS_MAX ? CONNS_MAX : (int)n;
}

int xy_ep_tls_accept(const struct xy_ep_tls *t, int lfd)
{
	if (!conns_max)
		conns_max = max_conns();
	for (;;) {
		struct sockaddr_storage sa;
		socklen_t sl = sizeof sa;
		int fd = accept4(lfd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC);
		struct conn *c;
		pthread_t th;
		pthread_attr_t at;
		sigset_t all, old;

		if (fd < 0)
			return errno == EMFILE || errno == ENFILE ||
				       errno == ENOBUFS || errno == ENOMEM
				       ? -1
				       : 0;
		if (atomic_load(&n_conns) >= conns_max ||
		    !(c = calloc(1, sizeof *c))) {
			close(fd);
			continue;
		}
		/* One address gets HELLOS_PER_ADDR handshakes at once and a
		 * quarter of the slots (at least as many): a flood from it
		 * leaves the others theirs. */
		source_key(&sa, c->key);
		if (source_take(c->key, conns_max / 4 > HELLOS_PER_ADDR
						? conns_max / 4
						: HELLOS_PER_ADDR) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->hello = 1;
		c->t = t;
		c->fd = fd;
		/* Small frames, a request and its answer: no Nagle delay. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		set_keepalive(fd, t->keepalive > 0 ? t->keepalive : 60);
		if (getnameinfo((struct sockaddr *)&sa, sl, c->peer,
				sizeof c->peer, NULL, 0, NI_NUMERICHOST) != 0)
			snprintf(c->peer, sizeof c->peer, "?");
		atomic_fetch_add(&n_conns, 1);
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 256 * 1024);
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		if (pthread_create(&th, &at, conn_main, c) != 0) {
			close(fd);
			source_give(c, 0);
			free(c);
			atomic_fetch_sub(&n_conns, 1);
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&at);
	}
}
