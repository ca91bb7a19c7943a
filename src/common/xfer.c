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
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "log.h"
#include "object.h"
#include "tls.h"
#include "util.h"

#define PREAUTH_MAX 1024
#define GET_MAX (XY_MAX_NAME + 256)
#define CONNECT_TIMEOUT_MS 10000
#define USED_BUCKETS 256

/* An object being received (xfer.h). Guarded by the server's plock;
 * freed when unlisted and its last reference is dropped. */
struct xy_xfer_partial {
	struct xy_xfer_server *s;
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint64_t size;
	uint64_t written; /* bytes in the file, from 0 (may go back) */
	int fd;
	int state; /* P_RECEIVING, P_DONE or P_FAILED */
	int refs;  /* the receiver's, and one per reader */
	int listed;
	struct xy_xfer_partial *next;
};

enum { P_RECEIVING, P_DONE, P_FAILED };

/* A token seen by this server, remembered until it expires. */
struct used {
	uint8_t mac[XY_MAC_LEN];
	uint64_t expiry;
	int uses;
	struct used *next;
};

struct slot {
	struct xy_xfer_server *s;
	pthread_t th;
	int fd;
	int io; /* what the connection is spoken on: fd, or its TLS bridge's */
	struct xy_tls_bridge *br;
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
	int64_t corrupt_at; /* test hook; -1: off */
	SSL_CTX *tls;       /* TLS keyed by the secret; NULL: plain */
	int pstopping;      /* under plock */
	/* objects being received, and tokens used */
	pthread_mutex_t plock;
	pthread_cond_t pcond; /* progress, a new object, or an end */
	struct xy_xfer_partial *partials;
	struct used *used[USED_BUCKETS];
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

/* ---- Serving ---- */

static uint64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static int send_object_header(int fd, uint8_t status, uint8_t kind,
			      uint64_t size)
{
	union xy_msg m = {.object = {status, kind, size}};
	return xy_fd_send_msg(fd, XY_MSG_OBJECT, &m, XY_XFER_TIMEOUT_MS, NULL,
			      0);
}

/* Sends bytes [from, to) of the file fd, flipping the byte at corrupt_at
 * (the test hook) on the way. */
static int send_range(int sock, int fd, uint64_t from, uint64_t to,
		      int64_t corrupt_at)
{
	off_t off = (off_t)from;
	while ((uint64_t)off < to) {
		uint64_t end = to;
		if (corrupt_at >= (int64_t)off && (uint64_t)corrupt_at < to) {
			if (corrupt_at == (int64_t)off) {
				uint8_t b;
				if (pread(fd, &b, 1, off) != 1)
					return -1;
				b ^= 0xff;
				if (xy_fd_write_all(sock, &b, 1,
						    XY_XFER_TIMEOUT_MS) < 0)
					return -1;
				off++;
				continue;
			}
			end = (uint64_t)corrupt_at;
		}
		uint64_t want = end - (uint64_t)off;
		ssize_t n = sendfile(sock, fd, &off,
				     want > (1u << 30) ? (1u << 30) : want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO; /* the file shrank */
			return -1;
		}
	}
	return 0;
}

/* Directory stream bytes to the socket: the first `skip` bytes are
 * dropped, and no more than `left` sent. pos is the stream offset. */
struct sink_ctx {
	int fd;
	uint64_t pos, skip, left;
	int64_t corrupt_at;
};

static int sock_sink(void *arg, const void *p, size_t n)
{
	struct sink_ctx *k = arg;
	const uint8_t *b = p;
	if (k->pos < k->skip) {
		size_t d = k->skip - k->pos < n ? k->skip - k->pos : n;
		b += d;
		n -= d;
		k->pos += d;
	}
	if (n > k->left) {
		errno = EFBIG;
		return -1;
	}
	k->left -= n;
	int64_t c = k->corrupt_at - (int64_t)k->pos;
	k->pos += n;
	if (c < 0 || c >= (int64_t)n)
		return xy_fd_write_all(k->fd, b, n, XY_XFER_TIMEOUT_MS);
	uint8_t flip = b[c] ^ 0xff;
	if (xy_fd_write_all(k->fd, b, (size_t)c, XY_XFER_TIMEOUT_MS) < 0 ||
	    xy_fd_write_all(k->fd, &flip, 1, XY_XFER_TIMEOUT_MS) < 0)
		return -1;
	return xy_fd_write_all(k->fd, b + c + 1, n - (size_t)c - 1,
			       XY_XFER_TIMEOUT_MS);
}

/* Serves a complete object from path, from g->offset. */
static int serve_complete(struct slot *sl, const struct xy_msg_get *g,
			  const char *path, uint8_t kind, const char *hex)
{
	struct xy_xfer_server *s = sl->s;
	char err[256] = "";
	uint64_t size = 0;
	uint8_t k2 = kind;
	struct stat st;
	int fd = -1, rc;
	if (kind == XY_KIND_FILE) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			size = (uint64_t)st.st_size;
		else
			snprintf(err, sizeof err, "cannot open %.200s", path);
	} else if (xy_object_stat(path, &k2, &size, err, sizeof err) < 0 ||
		   k2 != kind) {
		snprintf(err, sizeof err, "kind changed");
	}
	if (err[0] || g->offset > size) {
		XY_LOGW("xfer", "cannot serve %.16s from %s: %s", hex, path,
			err[0] ? err : "offset past the end");
		if (fd >= 0)
			close(fd);
		return send_object_header(sl->io, XY_OBJ_FAILED, kind, 0);
	}
	if (send_object_header(sl->io, XY_OBJ_OK, kind, size) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (fd >= 0) {
		rc = send_range(sl->io, fd, g->offset, size, s->corrupt_at);
		close(fd);
	} else {
		struct sink_ctx k = {sl->io, 0, g->offset, size - g->offset,
				     s->corrupt_at};
		rc = xy_object_stream(path, kind, sock_sink, &k, -1, err,
				      sizeof err);
		if (rc == 0 && k.left != 0)
			rc = -1;
	}
	if (rc < 0) {
		XY_LOGW("xfer", "sending %.16s to %s failed: %s", hex, sl->peer,
			err[0] ? err : strerror(errno));
		return -1;
	}
	atomic_fetch_add(&s->bytes_sent, size - g->offset);
	return 0;
}

static struct xy_xfer_partial *partial_find(struct xy_xfer_server *s,
					    const uint8_t id[XY_ID_LEN])
{
	for (struct xy_xfer_partial *p = s->partials; p; p = p->next)
		if (p->state != P_FAILED && !memcmp(p->id, id, XY_ID_LEN))
			return p;
	return NULL;
}

/* Drops a reference; called with plock held. */
static void partial_put(struct xy_xfer_partial *p)
{
	if (--p->refs > 0 || p->listed)
		return;
	close(p->fd);
	free(p);
}

/* A reference to the object id being received, waiting for it to appear
 * until *until at most once; NULL if it did not. */
static struct xy_xfer_partial *partial_get(struct xy_xfer_server *s,
					   const uint8_t id[XY_ID_LEN],
					   const struct timespec *until)
{
	pthread_mutex_lock(&s->plock);
	struct xy_xfer_partial *p = partial_find(s, id);
	if (!p && !s->pstopping) {
		pthread_cond_timedwait(&s->pcond, &s->plock, until);
		p = partial_find(s, id);
	}
	if (p)
		p->refs++;
	pthread_mutex_unlock(&s->plock);
	return p;
}

/* Sends p's stream from offset as its written bytes grow. */
static int serve_partial(struct slot *sl, const struct xy_msg_get *g,
			 struct xy_xfer_partial *p)
{
	struct xy_xfer_server *s = sl->s;
	uint64_t pos = g->offset, avail;
	int rc = 0;
	if (pos > p->size ||
	    send_object_header(sl->io, pos > p->size ? XY_OBJ_FAILED
						     : XY_OBJ_OK,
			       p->kind, p->size) < 0 || pos > p->size)
		rc = -1;
	pthread_mutex_lock(&s->plock);
	while (rc == 0 && pos < p->size) {
		struct timespec until;
		deadline_after(&until, XY_XFER_TIMEOUT_MS);
		while (p->written <= pos && p->state == P_RECEIVING &&
		       !s->pstopping && rc == 0)
			rc = pthread_cond_timedwait(&s->pcond, &s->plock,
						    &until) ? -1 : 0;
		if (rc < 0 || p->state == P_FAILED || s->pstopping) {
			rc = -1;
			break;
		}
		avail = p->written;
		pthread_mutex_unlock(&s->plock);
		rc = send_range(sl->io, p->fd, pos, avail, s->corrupt_at);
		if (rc == 0)
			atomic_fetch_add(&s->bytes_sent, avail - pos);
		pos = avail;
		pthread_mutex_lock(&s->plock);
	}
	partial_put(p);
	pthread_mutex_unlock(&s->plock);
	return rc;
}

/* Counts a use of a genuine token; -1 if it was used up already. */
static int token_use(struct xy_xfer_server *s,
		     const uint8_t tok[XY_TOKEN_LEN], uint64_t now_us)
{
	struct used **pp = &s->used[tok[8] % USED_BUCKETS], *u;
	int rc = 0;
	pthread_mutex_lock(&s->plock);
	while ((u = *pp)) {
		if (u->expiry < now_us) { /* forget expired tokens */
			*pp = u->next;
			free(u);
			continue;
		}
		if (!memcmp(u->mac, tok + 8, XY_MAC_LEN))
			break;
		pp = &u->next;
	}
	if (u) {
		rc = u->uses >= XY_TOKEN_USES ? -1 : 0;
		u->uses += rc == 0;
	} else if ((u = calloc(1, sizeof *u))) {
		memcpy(u->mac, tok + 8, XY_MAC_LEN);
		u->expiry = xy_token_expiry(tok);
		u->uses = 1;
		u->next = s->used[tok[8] % USED_BUCKETS];
		s->used[tok[8] % USED_BUCKETS] = u;
	}
	pthread_mutex_unlock(&s->plock);
	return rc;
}

static void free_tables(struct xy_xfer_server *s)
{
	for (int i = 0; i < USED_BUCKETS; i++) {
		for (struct used *u = s->used[i], *n; u; u = n) {
			n = u->next;
			free(u);
		}
	}
}

/* Serves one GET. Returns 0 to keep the connection, -1 to close it. */
/* The server is stopping: no partial object will appear any more. */
static int server_stopping(struct xy_xfer_server *s)
{
	pthread_mutex_lock(&s->plock);
	int stopping = s->pstopping;
	pthread_mutex_unlock(&s->plock);
	return stopping;
}

static int serve_get(struct slot *sl, const struct xy_msg_get *g)
{
	struct xy_xfer_server *s = sl->s;
	char path[4096], hex[2 * XY_ID_LEN + 1];
	uint8_t kind;
	uint64_t now = wall_us();
	xy_hex(g->id, XY_ID_LEN, hex);
	if (xy_token_check(s->secret, s->secret_len, g->id, g->name, g->token,
			   now) < 0 ||
	    token_use(s, g->token, now) < 0) {
		XY_LOGW("xfer", "denied %s (%s): %s token for %.16s", sl->peer,
			g->name, errno == ETIMEDOUT ? "expired"
				 : errno == EACCES  ? "bad"
						    : "used",
			hex);
		send_object_header(sl->io, XY_OBJ_DENIED, 0, 0);
		return -1;
	}
	struct timespec until;
	deadline_after(&until, XY_PARTIAL_WAIT_MS);
	for (;;) {
		if (s->lookup(s->arg, g->id, path, sizeof path, &kind) == 0)
			return serve_complete(sl, g, path, kind, hex);
		if (!(g->flags & XY_GET_PARTIAL) || server_stopping(s))
			break;
		struct xy_xfer_partial *p = partial_get(s, g->id, &until);
		if (p)
			return serve_partial(sl, g, p);
		struct timespec now_ts;
		clock_gettime(CLOCK_REALTIME, &now_ts);
		if (now_ts.tv_sec > until.tv_sec ||
		    (now_ts.tv_sec == until.tv_sec &&
		     now_ts.tv_nsec >= until.tv_nsec))
			break;
	}
	return send_object_header(sl->io, XY_OBJ_NOT_FOUND, 0, 0);
}

/* ---- Publishing objects being received ---- */

struct xy_xfer_partial *xy_xfer_partial_begin(struct xy_xfer_server *s,
					      const uint8_t id[XY_ID_LEN],
					      uint8_t kind, uint64_t size,
					      int fd)
{
	if (!s)
		return NULL;
	struct xy_xfer_partial *p = calloc(1, sizeof *p);
	if (!p || (p->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		free(p);
		return NULL;
	}
	p->s = s;
	memcpy(p->id, id, XY_ID_LEN);
	p->kind = kind;
	p->size = size;
	p->refs = 1;
	p->listed = 1;
	pthread_mutex_lock(&s->plock);
	p->next = s->partials;
	s->partials = p;
	pthread_cond_broadcast(&s->pcond);
	pthread_mutex_unlock(&s->plock);
	return p;
}

void xy_xfer_partial_progress(struct xy_xfer_partial *p, uint64_t written)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->s->plock);
	p->written = written;
	pthread_cond_broadcast(&p->s->pcond);
	pthread_mutex_unlock(&p->s->plock);
}

void xy_xfer_partial_end(struct xy_xfer_partial *p, int ok)
{
	if (!p)
		return;
	struct xy_xfer_server *s = p->s;
	pthread_mutex_lock(&s->plock);
	p->state = ok ? P_DONE : P_FAILED;
	if (ok)
		p->written = p->size;
	for (struct xy_xfer_partial **pp = &s->partials; *pp;
	     pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	p->listed = 0;
	pthread_cond_broadcast(&s->pcond);
	partial_put(p);
	pthread_mutex_unlock(&s->plock);
}

void xy_xfer_server_corrupt(struct xy_xfer_server *s, int64_t offset)
{
	s->corrupt_at = offset;
}

static void *conn_main(void *arg)
{
	struct slot *sl = arg;
	struct xy_xfer_server *s = sl->s;
	char err[256];
	uint8_t role = 0;
	tune_socket(sl->fd, XY_XFER_TIMEOUT_MS);
	sl->br = s->tls ? xy_tls_bridge_start(sl->fd, s->tls, 1,
					      XY_XFER_TIMEOUT_MS, err,
					      sizeof err)
			: NULL;
	sl->io = sl->br ? xy_tls_bridge_fd(sl->br) : sl->fd;
	if (s->tls && !sl->br) {
		XY_LOGW("xfer", "refused %s: %s", sl->peer, err);
	} else if (xy_auth_server_fd(sl->io, s->secret, s->secret_len, &role,
				     XY_XFER_TIMEOUT_MS, err,
				     sizeof err) < 0) {
		XY_LOGW("xfer", "refused %s: %s", sl->peer, err);
	} else if (role != XY_ROLE_TRANSFER) {
		union xy_msg e = {.error = {XY_ERR_PROTOCOL, "wrong role"}};
		xy_fd_send_msg(sl->io, XY_MSG_ERROR, &e, 1000, NULL, 0);
		XY_LOGW("xfer", "refused %s: role %u", sl->peer, role);
	} else {
		union xy_msg m;
		/* An idle connection ends after XY_XFER_TIMEOUT_MS. */
		while (xy_fd_recv_msg(sl->io, XY_MSG_GET, &m, GET_MAX,
				      XY_XFER_TIMEOUT_MS, err,
				      sizeof err) == 0) {
			int rc = serve_get(sl, &m.get);
			xy_msg_free(XY_MSG_GET, &m);
			if (rc < 0)
				break;
		}
	}
	/* What was written goes out through TLS first. */
	xy_tls_bridge_end(sl->br);
	sl->br = NULL;
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
	s->corrupt_at = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_init(&s->plock, NULL);
	pthread_cond_init(&s->pcond, NULL);
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

int xy_xfer_server_tls(struct xy_xfer_server *s, char *err, size_t errlen)
{
	s->tls = xy_tls_psk_ctx(1, s->secret, s->secret_len, err, errlen);
	return s->tls ? 0 : -1;
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
	pthread_mutex_lock(&s->plock);
	s->pstopping = 1;
	pthread_cond_broadcast(&s->pcond);
	pthread_mutex_unlock(&s->plock);
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
	SSL_CTX_free(s->tls);
	free_tables(s);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->pcond);
	pthread_mutex_destroy(&s->plock);
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

int xy_xfer_connect(const char *host, int port, char *err, size_t errlen)
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

int xy_xfer_request(int fd, const void *secret, size_t secret_len,
		    const uint8_t id[XY_ID_LEN],
		    const uint8_t token[XY_TOKEN_LEN], const char *name,
		    uint64_t offset, uint8_t flags, struct xy_msg_object *hdr,
		    uint8_t *blame, char *err, size_t errlen)
{
	union xy_msg m;
	*blame = XY_BLAME_HOST;
	if (xy_auth_client_fd(fd, secret, secret_len, XY_ROLE_TRANSFER,
			      XY_XFER_TIMEOUT_MS, err, errlen) < 0)
		return errno == ECONNREFUSED || errno == EACCES ? XY_OBJ_DENIED
							       : XY_OBJ_FAILED;
	*blame = XY_BLAME_OBJECT;
	memset(&m, 0, sizeof m);
	memcpy(m.get.id, id, XY_ID_LEN);
	memcpy(m.get.token, token, XY_TOKEN_LEN);
	m.get.name = (char *)name;
	m.get.offset = offset;
	m.get.flags = flags;
	if (xy_fd_send_msg(fd, XY_MSG_GET, &m, XY_XFER_TIMEOUT_MS, err,
			   errlen) < 0 ||
	    xy_fd_recv_msg(fd, XY_MSG_OBJECT, &m, PREAUTH_MAX,
			   XY_XFER_TIMEOUT_MS, err, errlen) < 0)
		return XY_OBJ_FAILED;
	*hdr = m.object;
	/* A source answers NOT_FOUND, DENIED or FAILED; anything else is
	 * taken as FAILED, so that no status of the receiver's own
	 * (NO_ROOM) comes from a source. */
	switch (m.object.status) {
	case XY_OBJ_OK:
		*blame = XY_BLAME_NONE;
		return XY_OBJ_OK;
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
}

/* The fetch after connecting: the request, then the body. */
static int fetch_on(int fd, const void *secret, size_t secret_len,
		    const uint8_t id[XY_ID_LEN],
		    const uint8_t token[XY_TOKEN_LEN], const char *name,
		    const char *dest, int readonly, uint64_t *bytes,
		    uint8_t *blame, char *err, size_t errlen)
{
	struct xy_msg_object hdr;
	int st = xy_xfer_request(fd, secret, secret_len, id, token, name, 0,
				 0, &hdr, blame, err, errlen);
	if (st != XY_OBJ_OK)
		return st;
	*blame = XY_BLAME_OBJECT;
	int local = 0;
	st = xy_object_recv(fd, hdr.kind, hdr.size, id, dest, readonly,
			    XY_XFER_TIMEOUT_MS, &local, err, errlen);
	if (st == XY_OBJ_OK && bytes)
		*bytes = hdr.size;
	if (local)
		*blame = XY_BLAME_NONE; /* our disk, not the source */
	return st;
}

int xy_xfer_open(const char *host, int port, const void *secret,
		 size_t secret_len, int tls, struct xy_tls_bridge **br,
		 int *io, char *err, size_t errlen)
{
	*br = NULL;
	int fd = xy_xfer_connect(host, port, err, errlen);
	*io = fd;
	if (fd < 0 || !tls)
		return fd;
	SSL_CTX *ctx = xy_tls_psk_ctx(0, secret, secret_len, err, errlen);
	if (ctx)
		*br = xy_tls_bridge_start(fd, ctx, 0, XY_XFER_TIMEOUT_MS, err,
					  errlen);
	SSL_CTX_free(ctx); /* its bridge holds a reference */
	if (!*br) {
		close(fd);
		*io = -1;
		return -1;
	}
	*io = xy_tls_bridge_fd(*br);
	return fd;
}

void xy_xfer_hangup(int fd, struct xy_tls_bridge *br)
{
	xy_tls_bridge_end(br);
	if (fd >= 0)
		close(fd);
}

int xy_xfer_fetch_blame(const char *host, int port, const void *secret,
			size_t secret_len, int tls, const uint8_t id[XY_ID_LEN],
			const uint8_t token[XY_TOKEN_LEN], const char *name,
			const char *dest, int readonly, uint64_t *bytes,
			uint8_t *blame, char *err, size_t errlen)
{
	uint8_t b = XY_BLAME_HOST;
	int st = XY_OBJ_FAILED;
	struct xy_tls_bridge *br;
	int io;
	int fd = xy_xfer_open(host, port, secret, secret_len, tls, &br, &io,
			      err, errlen);
	if (fd >= 0) {
		st = fetch_on(io, secret, secret_len, id, token, name, dest,
			      readonly, bytes, &b, err, errlen);
		xy_xfer_hangup(fd, br);
	}
	if (blame)
		*blame = st == XY_OBJ_OK ? XY_BLAME_NONE : b;
	return st;
}

int xy_xfer_fetch(const char *host, int port, const void *secret,
		  size_t secret_len, int tls, const uint8_t id[XY_ID_LEN],
		  const uint8_t token[XY_TOKEN_LEN], const char *name,
		  const char *dest, int readonly, uint64_t *bytes, char *err,
		  size_t errlen)
{
	return xy_xfer_fetch_blame(host, port, secret, secret_len, tls, id,
				   token,
				   name, dest, readonly, bytes, NULL, err,
				   errlen);
}
