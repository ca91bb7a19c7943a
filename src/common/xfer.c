/*
 * xfer.c: transfer servers and the fetch client (xfer.h). File bodies move
 * here, on blocking sockets in threads of their own, never on an event
 * loop. A server is one accept thread and a thread per connection; each
 * connection authenticates (role TRANSFER) and then serves GETs in turn.
 * object.c produces and verifies the streams.
 *
 * Shutdown: xy_xfer_server_stop wakes the accept thread through a pipe,
 * then shuts down every connection socket, which makes any blocked read,
 * poll or sendfile in a connection thread return; then it joins them all.
 * A connection thread never closes its own socket: the thread that joins
 * it does, so that stop cannot shut down a reused descriptor.
 */
#include "xfer.h"

#include <errno.h>
#include <fcntl.h>
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "log.h"
#include "object.h"
#include "util.h"

#define PREAUTH_MAX 1024
#define CONNECT_TIMEOUT_MS 10000

struct slot {
	struct xy_xfer_server *s;
	pthread_t th;
	int fd;
	int used; /* a thread runs or awaits its join */
	int done; /* the thread has finished */
	char peer[80];
};

struct xy_xfer_server {
	int lfd;
	int wake[2]; /* self-pipe that wakes the accept thread */
	int port;
	uint8_t *secret;
	size_t secret_len;
	xy_xfer_lookup_fn lookup;
	void *arg;
	atomic_uint_least64_t bytes_sent;
	pthread_t accept_th;
	int accept_started;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a slot became free, or stop began */
	int stopping;
	int active;
	struct slot slots[XY_XFER_MAX_CONN];
};

static void peer_name(const struct sockaddr *sa, char *out, size_t n)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);
	if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
			NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(out, n, "?");
	else
		snprintf(out, n,
			 sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host,
			 serv);
}

static void tune_socket(int fd, int timeout_ms)
{
	int one = 1;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	/* Bounds a blocking sendfile to a peer that stopped reading. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Stream bytes to the socket, refusing more than the size announced. */
struct sink_ctx {
	int fd;
	uint64_t left;
};

static int sock_sink(void *arg, const void *p, size_t n)
{
	struct sink_ctx *k = arg;
	if (n > k->left) {
		errno = EFBIG;
		return -1;
	}
	k->left -= n;
	return xy_fd_write_all(k->fd, p, n, XY_XFER_TIMEOUT_MS);
}

static int send_object_header(int fd, uint8_t status, uint8_t kind,
			      uint64_t size)
{
	union xy_msg m = {.object = {status, kind, size}};
	return xy_fd_send_msg(fd, XY_MSG_OBJECT, &m, XY_XFER_TIMEOUT_MS, NULL,
			      0);
}

/* Serves one GET. Returns 0 to keep the connection, -1 to close it. */
static int serve_get(struct slot *sl, const struct xy_msg_get *g)
{
	struct xy_xfer_server *s = sl->s;
	char path[4096], err[256], hex[2 * XY_ID_LEN + 1];
	uint8_t kind, k2;
	uint64_t size;
	xy_hex(g->id, XY_ID_LEN, hex);
	if (xy_token_check(s->secret, s->secret_len, g->id, g->token,
			   (uint64_t)time(NULL)) < 0) {
		XY_LOGW("xfer", "denied %s: %s token for %.16s", sl->peer,
			errno == ETIMEDOUT ? "expired" : "bad", hex);
		send_object_header(sl->fd, XY_OBJ_DENIED, 0, 0);
		return -1;
	}
	if (s->lookup(s->arg, g->id, path, sizeof path, &kind) < 0)
		return send_object_header(sl->fd, XY_OBJ_NOT_FOUND, 0, 0);
	if (xy_object_stat(path, &k2, &size, err, sizeof err) < 0 ||
	    k2 != kind) {
		XY_LOGW("xfer", "cannot serve %.16s from %s: %s", hex, path,
			k2 != kind ? "kind changed" : err);
		return send_object_header(sl->fd, XY_OBJ_FAILED, kind, 0);
	}
	if (send_object_header(sl->fd, XY_OBJ_OK, kind, size) < 0)
		return -1;
	struct sink_ctx k = {sl->fd, size};
	if (xy_object_stream(path, kind, sock_sink, &k,
			     kind == XY_KIND_FILE ? sl->fd : -1, err,
			     sizeof err) < 0 ||
	    (kind == XY_KIND_DIR && k.left != 0)) {
		XY_LOGW("xfer", "sending %.16s to %s failed: %s", hex, sl->peer,
			k.left ? err : "object changed while sent");
		return -1;
	}
	atomic_fetch_add(&s->bytes_sent, size);
	return 0;
}

static void *conn_main(void *arg)
{
	struct slot *sl = arg;
	struct xy_xfer_server *s = sl->s;
	char err[256];
	uint8_t role = 0;
	tune_socket(sl->fd, XY_XFER_TIMEOUT_MS);
	if (xy_auth_server_fd(sl->fd, s->secret, s->secret_len, &role,
			      XY_XFER_TIMEOUT_MS, err, sizeof err) < 0) {
		XY_LOGW("xfer", "refused %s: %s", sl->peer, err);
	} else if (role != XY_ROLE_TRANSFER) {
		union xy_msg e = {.error = {XY_ERR_PROTOCOL, "wrong role"}};
		xy_fd_send_msg(sl->fd, XY_MSG_ERROR, &e, 1000, NULL, 0);
		XY_LOGW("xfer", "refused %s: role %u", sl->peer, role);
	} else {
		union xy_msg m;
		/* An idle connection ends after XY_XFER_TIMEOUT_MS. */
		while (xy_fd_recv_msg(sl->fd, XY_MSG_GET, &m, PREAUTH_MAX,
				      XY_XFER_TIMEOUT_MS, err,
				      sizeof err) == 0 &&
		       serve_get(sl, &m.get) == 0)
			;
	}
	/* The peer sees EOF now; the descriptor stays ours until joined. */
	shutdown(sl->fd, SHUT_RDWR);
	pthread_mutex_lock(&s->lock);
	sl->done = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* Wake the accept thread so that it joins this one soon. */
	if (write(s->wake[1], "r", 1) < 0 && errno != EAGAIN)
		XY_LOGD("xfer", "wake: %s", strerror(errno));
	return NULL;
}

/* Joins finished connection threads. Called with the lock held. */
static void reap(struct xy_xfer_server *s)
{
	for (int i = 0; i < XY_XFER_MAX_CONN; i++) {
		struct slot *sl = &s->slots[i];
		if (!sl->used || !sl->done)
			continue;
		pthread_join(sl->th, NULL);
		close(sl->fd);
		sl->used = 0;
		s->active--;
	}
}

/* Waits for a free slot; returns it, or NULL if stopping. */
static struct slot *free_slot(struct xy_xfer_server *s)
{
	pthread_mutex_lock(&s->lock);
	for (;;) {
		reap(s);
		if (s->stopping) {
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		for (int i = 0; i < XY_XFER_MAX_CONN; i++) {
			if (!s->slots[i].used) {
				pthread_mutex_unlock(&s->lock);
				return &s->slots[i];
			}
		}
		pthread_cond_wait(&s->cond, &s->lock);
	}
}

/* Waits for a connection; returns its fd, -1 when stopping, or -2 when a
 * connection thread finished and wants joining. */
static int accept_one(struct xy_xfer_server *s, char *peer, size_t n)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = s->lfd, .events = POLLIN},
				      {.fd = s->wake[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return -1;
		if (p[1].revents) {
			char drain[64];
			while (read(s->wake[0], drain, sizeof drain) > 0)
				;
			return -2;
		}
		if (!p[0].revents)
			continue;
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(s->lfd, (struct sockaddr *)&ss, &len,
				 SOCK_CLOEXEC);
		if (fd >= 0) {
			peer_name((struct sockaddr *)&ss, peer, n);
			return fd;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
			usleep(100000); /* let connections finish */
		else if (errno != EINTR && errno != EAGAIN &&
			 errno != ECONNABORTED)
			return -1;
	}
}

static void *accept_main(void *arg)
{
	struct xy_xfer_server *s = arg;
	struct slot *sl;
	char peer[80];
	while ((sl = free_slot(s))) {
		int fd = accept_one(s, peer, sizeof peer);
		if (fd == -2)
			continue; /* free_slot reaps, or sees stopping */
		if (fd < 0)
			break;
		pthread_mutex_lock(&s->lock);
		sl->s = s;
		sl->fd = fd;
		sl->done = 0;
		snprintf(sl->peer, sizeof sl->peer, "%s", peer);
		if (pthread_create(&sl->th, NULL, conn_main, sl) != 0) {
			close(fd);
		} else {
			sl->used = 1;
			s->active++;
		}
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

/* Binds and listens on host:port; returns the socket or -1. */
static int listen_on(const char *host, int port, char *err, size_t errlen)
{
	char serv[16];
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE};
	struct addrinfo *res, *ai;
	snprintf(serv, sizeof serv, "%d", port);
	int rc = getaddrinfo(host, serv, &hints, &res);
	if (rc != 0)
		return xy_fail(err, errlen, EINVAL, "cannot resolve %s: %s",
			       host ? host : "*", gai_strerror(rc));
	int fd = -1, e = 0;
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int one = 1, zero = 0;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
				   sizeof zero);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, 128) < 0) {
			e = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return xy_fail(err, errlen, e ? e : EADDRNOTAVAIL,
			       "cannot listen on %s:%d: %s", host ? host : "*",
			       port, strerror(e ? e : EADDRNOTAVAIL));
	return fd;
}

static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Starts the accept thread with every signal blocked, so that signals
 * go to the application's threads and a peer that hangs up mid-sendfile
 * cannot kill the process with SIGPIPE. Connection threads inherit the
 * mask. */
static int start_accept_thread(struct xy_xfer_server *s)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&s->accept_th, NULL, accept_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

struct xy_xfer_server *xy_xfer_server_start(const char *host, int port,
					    const void *secret,
					    size_t secret_len,
					    xy_xfer_lookup_fn lookup,
					    void *arg, char *err,
					    size_t errlen)
{
	struct xy_xfer_server *s = calloc(1, sizeof *s);
	if (!s) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	s->lfd = s->wake[0] = s->wake[1] = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	atomic_init(&s->bytes_sent, 0);
	s->lookup = lookup;
	s->arg = arg;
	s->secret_len = secret_len;
	s->secret = malloc(secret_len ? secret_len : 1);
	if (!s->secret) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		goto error;
	}
	memcpy(s->secret, secret, secret_len);
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		xy_fail(err, errlen, errno, "pipe: %s", strerror(errno));
		goto error;
	}
	if ((s->lfd = listen_on(host, port, err, errlen)) < 0)
		goto error;
	s->port = local_port(s->lfd);
	if (start_accept_thread(s) != 0) {
		xy_fail(err, errlen, EAGAIN, "cannot start a thread");
		goto error;
	}
	s->accept_started = 1;
	return s;
error:
	xy_xfer_server_stop(s);
	return NULL;
}

int xy_xfer_server_port(const struct xy_xfer_server *s)
{
	return s->port;
}

uint64_t xy_xfer_server_bytes_sent(const struct xy_xfer_server *s)
{
	return atomic_load(&((struct xy_xfer_server *)s)->bytes_sent);
}

void xy_xfer_server_stop(struct xy_xfer_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->wake[1] >= 0 && write(s->wake[1], "s", 1) < 0 &&
	    errno != EAGAIN)
		XY_LOGE("xfer", "cannot wake the accept thread");
	if (s->lfd >= 0)
		shutdown(s->lfd, SHUT_RDWR);
	if (s->accept_started)
		pthread_join(s->accept_th, NULL);
	/* Only this thread touches the slots now. */
	for (int i = 0; i < XY_XFER_MAX_CONN; i++)
		if (s->slots[i].used)
			shutdown(s->slots[i].fd, SHUT_RDWR);
	for (int i = 0; i < XY_XFER_MAX_CONN; i++) {
		if (!s->slots[i].used)
			continue;
		pthread_join(s->slots[i].th, NULL);
		close(s->slots[i].fd);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->wake[0] >= 0)
		close(s->wake[0]);
	if (s->wake[1] >= 0)
		close(s->wake[1]);
	if (s->secret)
		OPENSSL_cleanse(s->secret, s->secret_len);
	free(s->secret);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Connects to one address within timeout_ms; returns a blocking socket. */
static int connect_addr(const struct addrinfo *ai, int timeout_ms)
{
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int e = 0;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		socklen_t len = sizeof e;
		int n = 0;
		e = errno;
		if (e == EINPROGRESS) {
			while ((n = poll(&p, 1, timeout_ms)) < 0 &&
			       errno == EINTR)
				;
			if (n == 0)
				e = ETIMEDOUT;
			else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR,
						     &e, &len) < 0)
				e = errno;
		}
	}
	if (e) {
		close(fd);
		errno = e;
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	tune_socket(fd, XY_XFER_TIMEOUT_MS);
	return fd;
}

static int connect_to(const char *host, int port, char *err, size_t errlen)
{
	char serv[16];
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	snprintf(serv, sizeof serv, "%d", port);
	int rc = getaddrinfo(host, serv, &hints, &res);
	if (rc != 0)
		return xy_fail(err, errlen, EHOSTUNREACH,
			       "cannot resolve %s: %s", host, gai_strerror(rc));
	int fd = -1, e = ECONNREFUSED;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
		if ((fd = connect_addr(ai, CONNECT_TIMEOUT_MS)) < 0)
			e = errno;
	freeaddrinfo(res);
	if (fd < 0)
		return xy_fail(err, errlen, e, "cannot connect to %s:%d: %s",
			       host, port, strerror(e));
	return fd;
}

/* The fetch after connecting: auth, GET, OBJECT, body. */
static int fetch_on(int fd, const void *secret, size_t secret_len,
		    const uint8_t id[XY_ID_LEN],
		    const uint8_t token[XY_TOKEN_LEN], const char *dest,
		    int readonly, uint64_t *bytes, char *err, size_t errlen)
{
	union xy_msg m;
	if (xy_auth_client_fd(fd, secret, secret_len, XY_ROLE_TRANSFER,
			      XY_XFER_TIMEOUT_MS, err, errlen) < 0)
		return errno == ECONNREFUSED || errno == EACCES ? XY_OBJ_DENIED
							       : XY_OBJ_FAILED;
	memcpy(m.get.id, id, XY_ID_LEN);
	memcpy(m.get.token, token, XY_TOKEN_LEN);
	if (xy_fd_send_msg(fd, XY_MSG_GET, &m, XY_XFER_TIMEOUT_MS, err,
			   errlen) < 0 ||
	    xy_fd_recv_msg(fd, XY_MSG_OBJECT, &m, PREAUTH_MAX,
			   XY_XFER_TIMEOUT_MS, err, errlen) < 0)
		return XY_OBJ_FAILED;
	switch (m.object.status) {
	case XY_OBJ_OK:
		break;
	case XY_OBJ_NOT_FOUND:
		xy_fail(err, errlen, ENOENT, "source does not have the object");
		return XY_OBJ_NOT_FOUND;
	case XY_OBJ_DENIED:
		xy_fail(err, errlen, EACCES, "source refused the token");
		return XY_OBJ_DENIED;
	default:
		xy_fail(err, errlen, EIO, "source failed to read the object");
		return XY_OBJ_FAILED;
	}
	int st = xy_object_recv(fd, m.object.kind, m.object.size, id, dest,
				readonly, XY_XFER_TIMEOUT_MS, err, errlen);
	if (st == XY_OBJ_OK && bytes)
		*bytes = m.object.size;
	return st;
}

int xy_xfer_fetch(const char *host, int port, const void *secret,
		  size_t secret_len, const uint8_t id[XY_ID_LEN],
		  const uint8_t token[XY_TOKEN_LEN], const char *dest,
		  int readonly, uint64_t *bytes, char *err, size_t errlen)
{
	int fd = connect_to(host, port, err, errlen);
	if (fd < 0)
		return XY_OBJ_FAILED;
	int st = fetch_on(fd, secret, secret_len, id, token, dest, readonly,
			  bytes, err, errlen);
	close(fd);
	return st;
}
