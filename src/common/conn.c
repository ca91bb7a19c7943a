/*
 * conn.c: framed, authenticated control connections on libuv TCP streams
 * (conn.h). A conn runs the handshake of auth.h, then turns the byte
 * stream into decoded messages for its owner. Outgoing frames collect in a
 * buffer while one write is in flight, and go out together when it ends.
 * Reads go into a buffer shared by the thread's conns (alloc_cb).
 *
 * A conn holds three handles: the TCP stream, a timer (the handshake
 * deadline, and later the bound on flushing at close), and a check
 * handle that flushes what message handlers queued (schedule_flush).
 * It is freed only after all have closed and any address lookup has
 * returned.
 */
#include "conn.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "auth.h"
#include "log.h"
#include "msgmac.h"
#include "tls.h"
#include "util.h"

#define PREAUTH_MAX_FRAME 1024
#define HANDSHAKE_MS 10000
#define CLOSE_FLUSH_MS 2000
#define READ_CHUNK 65536
#define KEEPALIVE_S 60
/* A TLS server that has heard nothing this long tells the peer, in
 * plain text, that it speaks TLS: a plain client waits for the
 * CHALLENGE, and a TLS one sends its hello at once. */
#define PLAIN_HINT_MS 5000

enum state {
	S_CONNECTING,      /* client: resolving and connecting */
	S_AWAIT_CHALLENGE, /* client */
	S_AWAIT_AUTH_OK,   /* client */
	S_AWAIT_AUTH,      /* server */
	S_READY,
};

struct xy_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_check_t check; /* the flush after the turn's I/O callbacks */
	uv_getaddrinfo_t gai;
	uv_connect_t creq;
	uv_write_t wreq;
	enum state state;
	int server;
	int closing;     /* xy_conn_close was called */
	int handles;     /* handles not yet closed, once closing began */
	int shut;        /* uv_close was called on both handles */
	int closed;      /* both handles closed; on_close has run */
	int gai_pending; /* the lookup still owns gai */
	int silent;      /* failed in accept: free without on_close */
	int writing;     /* wreq is in flight with `wbuf` */
	int scheduled;   /* check is started (schedule_flush) */
	int corked;      /* queue frames, write none (xy_conn_cork) */
	int refused;     /* the handshake failed for good (xy_conn_refused) */
	int shared_in;   /* alloc_cb gave the thread's shared read buffer */
	uint8_t role;
	uint8_t nonce_s[XY_NONCE_LEN];
	uint8_t nonce_c[XY_NONCE_LEN];
	uint8_t *secret;
	size_t secret_len;
	struct xy_conn_opts opts;
	struct xy_buf in;   /* bytes read, not yet parsed */
	struct xy_buf out;  /* frames queued for the next write */
	struct xy_buf wbuf; /* frames being written */
	struct xy_buf held; /* the owner's frames sent before READY */
	/* TLS (opts.tls): OpenSSL reads the stream's bytes from rbio and
	 * leaves its own in wbio; `out` then holds plain frames, and
	 * `wbuf` the records being written. */
	SSL *ssl;
	BIO *rbio, *wbio;
	struct xy_buf raw; /* a read when the shared buffer is busy */
	int tls_up;        /* the TLS handshake is done */
	int hint_done;     /* the plain-client check passed */
	int heard;         /* some bytes came from the peer */
	char tls_host[256]; /* client: the name the certificate must have */
	/* Without TLS, once READY: the MACs that tag every frame sent and
	 * check every frame read (msgmac.h). */
	struct xy_msgmac *mac_out, *mac_in;
	char peer[80];
	char peer_ip[64];
	char reason[256];
};

static void finish_close(struct xy_conn *c);

static void conn_free(struct xy_conn *c)
{
	if (c->secret)
		OPENSSL_cleanse(c->secret, c->secret_len);
	free(c->secret);
	SSL_free(c->ssl);
	xy_msgmac_destroy(c->mac_out);
	xy_msgmac_destroy(c->mac_in);
	xy_buf_free(&c->raw);
	xy_buf_free(&c->in);
	xy_buf_free(&c->out);
	xy_buf_free(&c->wbuf);
	xy_buf_free(&c->held);
	free(c);
}

static void close_cb(uv_handle_t *h)
{
	struct xy_conn *c = h->data;
	if (--c->handles > 0)
		return;
	c->closed = 1;
	if (!c->silent && c->opts.on_close)
		c->opts.on_close(c, c->reason);
	if (!c->gai_pending)
		conn_free(c);
}

static void finish_close(struct xy_conn *c)
{
	if (c->shut)
		return;
	c->shut = 1;
	c->closing = 1;
	if (!c->reason[0])
		snprintf(c->reason, sizeof c->reason, "closed");
	c->handles = 3;
	uv_close((uv_handle_t *)&c->tcp, close_cb);
	uv_close((uv_handle_t *)&c->timer, close_cb);
	uv_close((uv_handle_t *)&c->check, close_cb);
}

static void write_cb(uv_write_t *req, int status);

/* TLS: encrypts the queued frames (once the handshake is done) and
 * moves what OpenSSL wrote into wbuf. 0, or -1 (reason set). */
static int tls_seal(struct xy_conn *c)
{
	if (c->tls_up && c->out.len) {
		if (c->out.len > INT32_MAX ||
		    SSL_write(c->ssl, c->out.data, (int)c->out.len) !=
			    (int)c->out.len) {
			char why[200];
			snprintf(c->reason, sizeof c->reason, "TLS write: %s",
				 xy_tls_error(c->ssl, why, sizeof why));
			return -1;
		}
		xy_buf_reset(&c->out);
		if (c->out.cap > (1u << 20))
			xy_buf_free(&c->out);
	}
	size_t n = BIO_ctrl_pending(c->wbio);
	if (n == 0)
		return 0;
	if (xy_buf_reserve(&c->wbuf, n) < 0 ||
	    BIO_read(c->wbio, c->wbuf.data + c->wbuf.len, (int)n) != (int)n) {
		snprintf(c->reason, sizeof c->reason, "out of memory");
		return -1;
	}
	c->wbuf.len += n;
	return 0;
}

/* Starts a write of everything queued, unless one is in flight. */
static void flush(struct xy_conn *c)
{
	if (c->writing || c->shut)
		return;
	if (c->ssl) {
		if (tls_seal(c) < 0) {
			c->closing = 1;
			finish_close(c);
			return;
		}
		if (c->wbuf.len == 0)
			return;
	} else {
		if (c->out.len == 0)
			return;
		struct xy_buf t = c->wbuf;
		c->wbuf = c->out;
		c->out = t;
		xy_buf_reset(&c->out);
	}
	uv_buf_t b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
	int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
	if (rc < 0) {
		xy_buf_reset(&c->wbuf);
		if (!c->closing)
			snprintf(c->reason, sizeof c->reason,
				 "write failed: %s", uv_strerror(rc));
		finish_close(c);
		return;
	}
	c->writing = 1;
}

static void write_cb(uv_write_t *req, int status)
{
	struct xy_conn *c = req->data;
	c->writing = 0;
	xy_buf_reset(&c->wbuf);
	if (c->wbuf.cap > (1u << 20))
		xy_buf_free(&c->wbuf); /* do not keep a large frame's memory */
	if (status == UV_ECANCELED)
		return;
	if (status < 0) {
		if (!c->closing)
			snprintf(c->reason, sizeof c->reason,
				 "write failed: %s", uv_strerror(status));
		finish_close(c);
		return;
	}
	flush(c);
	if (c->closing && !c->writing)
		finish_close(c);
}

/* Without TLS: appends the tag of the frame at out[start..] (msgmac.h).
 * A MAC that cannot be computed drops the frame and the conn. */
static int tag_frame(struct xy_conn *c, size_t start)
{
	uint8_t tag[XY_MSGMAC_TAG];
	if (xy_msgmac_sign(c->mac_out, c->out.data + start,
			   c->out.len - start, tag) < 0) {
		c->out.len = start;
		XY_LOGE("conn", "closing %s: cannot compute a message MAC",
			c->peer);
		xy_conn_close(c, "cannot compute a message MAC");
		errno = EIO;
		return -1;
	}
	xy_buf_put_raw(&c->out, tag, sizeof tag);
	if (!c->out.oom)
		return 0;
	xy_conn_close(c, "out of memory"); /* a frame without its tag */
	errno = ENOMEM;
	return -1;
}

/*
 * Frames that message handlers send while the loop runs its I/O
 * callbacks (a reply, the next TASK for the worker that said TASK_DONE,
 * from any conn of the thread) are written once per conn, in the check
 * phase right after those callbacks: one SSL_write (one record, with
 * TLS) and one write for all of them, where writing the first at once
 * would cost a record and a write of its own. Frames sent anywhere else
 * (timers, the manager's scheduling phase) are written at once, as the
 * loop may poll next; what they send while that write is in flight
 * goes when it ends. Neither way makes the loop wake up more.
 */
static __thread int in_io; /* read_cb is running, on this thread */

static void check_cb(uv_check_t *h)
{
	struct xy_conn *c = h->data;
	c->scheduled = 0;
	uv_check_stop(&c->check);
	if (!c->corked && !c->closing)
		flush(c);
}

static void schedule_flush(struct xy_conn *c)
{
	if (!in_io) {
		flush(c);
		return;
	}
	if (c->scheduled || c->shut)
		return;
	c->scheduled = 1;
	uv_check_start(&c->check, check_cb);
}

/* Queues a frame regardless of state (the handshake uses this). */
static int queue(struct xy_conn *c, struct xy_buf *b, unsigned type,
		 const union xy_msg *m)
{
	size_t start = b->len;
	if (xy_msg_encode(b, type, m) < 0)
		return -1;
	if (b == &c->out && c->mac_out && tag_frame(c, start) < 0)
		return -1;
	if (b == &c->out && !c->corked)
		schedule_flush(c);
	return 0;
}

void xy_conn_cork(struct xy_conn *c, int corked)
{
	c->corked = corked;
	if (!corked && c->state == S_READY)
		flush(c);
}

static void log_failure(struct xy_conn *c, const char *reason)
{
	if (c->opts.quiet && !c->server && c->state != S_READY)
		XY_LOGD("conn", "handshake with %s failed: %s", c->peer,
			reason);
	else if (c->state == S_READY)
		XY_LOGW("conn", "closing %s: %s", c->peer, reason);
	else if (c->server)
		XY_LOGW("conn", "refused %s: %s", c->peer, reason);
	else
		XY_LOGW("conn", "handshake with %s failed: %s", c->peer,
			reason);
}

/* A protocol or authentication failure: tell the peer why, log it, and
 * close. */
static void fail(struct xy_conn *c, uint32_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct xy_conn *c, uint32_t code, const char *fmt, ...)
{
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (c->closing)
		return;
	if (code && c->state != S_CONNECTING) {
		union xy_msg m = {.error = {.code = code, .text = reason}};
		queue(c, &c->out, XY_MSG_ERROR, &m);
	}
	log_failure(c, reason);
	xy_conn_close(c, reason);
}

static void set_peer(struct xy_conn *c, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;
		uv_ip4_name(s4, ip, sizeof ip);
		port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		uv_ip6_name(s6, ip, sizeof ip);
		port = ntohs(s6->sin6_port);
	}
	snprintf(c->peer_ip, sizeof c->peer_ip, "%s", ip);
	snprintf(c->peer, sizeof c->peer,
		 sa->sa_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
}

/* Without TLS: the MACs of both directions, keyed by the secret and
 * this handshake's nonces. 0, or -1 (closing). */
static int mac_start(struct xy_conn *c)
{
	char out = c->server ? 's' : 'c', in = c->server ? 'c' : 's';
	c->mac_out = xy_msgmac_create(c->secret, c->secret_len, out,
				      c->nonce_s, c->nonce_c);
	c->mac_in = xy_msgmac_create(c->secret, c->secret_len, in,
				     c->nonce_s, c->nonce_c);
	if (c->mac_out && c->mac_in)
		return 0;
	fail(c, 0, "cannot set up the message MAC");
	return -1;
}

/* Moves the frames the owner sent before READY to `out`, each tagged
 * when the conn has no TLS. */
static void release_held(struct xy_conn *c)
{
	size_t pos = 0;
	while (c->mac_out && pos + XY_FRAME_HEADER <= c->held.len) {
		uint32_t flen;
		uint16_t type;
		if (xy_frame_parse(c->held.data + pos, &flen, &type) < 0)
			break; /* encoded here: cannot happen */
		size_t start = c->out.len, n = XY_FRAME_HEADER + (size_t)flen;
		xy_buf_put_raw(&c->out, c->held.data + pos, n);
		if (c->out.oom || tag_frame(c, start) < 0)
			break;
		pos += n;
	}
	if (!c->mac_out)
		xy_buf_put_raw(&c->out, c->held.data, c->held.len);
	xy_buf_free(&c->held);
}

static void handshake_done(struct xy_conn *c, uint8_t role)
{
	c->state = S_READY;
	c->role = role;
	uv_timer_stop(&c->timer);
	if (!c->ssl && mac_start(c) < 0)
		return;
	if (c->held.len) {
		release_held(c);
		if (c->closing)
			return;
		flush(c);
	}
	if (c->opts.on_ready)
		c->opts.on_ready(c, role);
}

static void on_auth(struct xy_conn *c, const struct xy_msg_auth *a)
{
	if (a->version != XY_PROTO_VERSION) {
		fail(c, XY_ERR_VERSION, "version mismatch (%u, not %u)",
		     a->version, XY_PROTO_VERSION);
		return;
	}
	uint8_t want[XY_MAC_LEN];
	xy_auth_mac(c->secret, c->secret_len, 'c', a->role, c->nonce_s,
		    a->nonce, want);
	if (xy_auth_equal(want, a->mac, XY_MAC_LEN) != 0) {
		fail(c, XY_ERR_AUTH, "bad secret");
		return;
	}
	union xy_msg ok;
	memcpy(c->nonce_c, a->nonce, XY_NONCE_LEN);
	xy_auth_mac(c->secret, c->secret_len, 's', a->role, a->nonce,
		    c->nonce_s, ok.auth_ok.mac);
	queue(c, &c->out, XY_MSG_AUTH_OK, &ok);
	handshake_done(c, a->role);
}

static void on_challenge(struct xy_conn *c, const struct xy_msg_challenge *ch)
{
	if (ch->magic != XY_PROTO_MAGIC || ch->version != XY_PROTO_VERSION) {
		c->refused = 1;
		fail(c, XY_ERR_VERSION, "version mismatch (%u, not %u)",
		     ch->version, XY_PROTO_VERSION);
		return;
	}
	memcpy(c->nonce_s, ch->nonce, XY_NONCE_LEN);
	union xy_msg a = {.auth = {.version = XY_PROTO_VERSION,
				   .role = c->opts.role}};
	if (xy_random(c->nonce_c, XY_NONCE_LEN) < 0) {
		fail(c, 0, "no random bytes");
		return;
	}
	memcpy(a.auth.nonce, c->nonce_c, XY_NONCE_LEN);
	xy_auth_mac(c->secret, c->secret_len, 'c', c->opts.role, c->nonce_s,
		    c->nonce_c, a.auth.mac);
	c->state = S_AWAIT_AUTH_OK;
	queue(c, &c->out, XY_MSG_AUTH, &a);
}

static void on_auth_ok(struct xy_conn *c, const struct xy_msg_auth_ok *ok)
{
	uint8_t want[XY_MAC_LEN];
	xy_auth_mac(c->secret, c->secret_len, 's', c->opts.role, c->nonce_c,
		    c->nonce_s, want);
	if (xy_auth_equal(want, ok->mac, XY_MAC_LEN) != 0) {
		c->refused = 1;
		fail(c, XY_ERR_AUTH, "server did not prove the secret");
		return;
	}
	handshake_done(c, c->opts.role);
}

/* One decoded message: the handshake steps, or the owner's handler. */
static void dispatch(struct xy_conn *c, unsigned type, union xy_msg *m)
{
	static const unsigned expect[] = {
		[S_AWAIT_CHALLENGE] = XY_MSG_CHALLENGE,
		[S_AWAIT_AUTH_OK] = XY_MSG_AUTH_OK,
		[S_AWAIT_AUTH] = XY_MSG_AUTH,
	};
	if (type == XY_MSG_ERROR) {
		/* A refusal of the secret or the version stands; a peer that
		 * gave up waiting for us (TIMEOUT) may take us next time. */
		c->refused = c->state != S_READY &&
			     (m->error.code == XY_ERR_AUTH ||
			      m->error.code == XY_ERR_VERSION);
		fail(c, 0, "%s: %s",
		     c->state == S_READY ? "peer error" : "refused by peer",
		     m->error.text ? m->error.text : "");
		return;
	}
	if (c->state == S_READY) {
		if (type <= XY_MSG_AUTH_OK)
			fail(c, XY_ERR_PROTOCOL, "unexpected %s",
			     xy_msg_name(type));
		else if (c->opts.on_msg)
			c->opts.on_msg(c, type, m);
		return;
	}
	if (type != expect[c->state]) {
		fail(c, XY_ERR_PROTOCOL, "expected %s, got %s",
		     xy_msg_name(expect[c->state]), xy_msg_name(type));
		return;
	}
	if (type == XY_MSG_AUTH)
		on_auth(c, &m->auth);
	else if (type == XY_MSG_CHALLENGE)
		on_challenge(c, &m->challenge);
	else
		on_auth_ok(c, &m->auth_ok);
}

/* Parses and dispatches every whole frame in data[0..len). Returns the
 * bytes used; the rest is the start of a frame, whose whole length (its
 * header and body) goes to *want once its header has come (else 0).
 * Stops as soon as the conn starts closing, even inside one read. */
static size_t parse_frames(struct xy_conn *c, const uint8_t *data,
			   size_t len, size_t *want)
{
	size_t pos = 0;
	*want = 0;
	while (!c->closing && len - pos >= XY_FRAME_HEADER) {
		uint32_t flen;
		uint16_t type;
		uint32_t max = c->state == S_READY ? XY_MAX_FRAME
						   : PREAUTH_MAX_FRAME;
		if (xy_frame_parse(data + pos, &flen, &type) < 0) {
			fail(c, XY_ERR_PROTOCOL, "bad frame header");
			break;
		}
		if (flen > max) {
			fail(c, XY_ERR_PROTOCOL,
			     "%s frame of %u bytes exceeds %u",
			     xy_msg_name(type), flen, max);
			break;
		}
		size_t tag = c->mac_in ? XY_MSGMAC_TAG : 0;
		if (len - pos - XY_FRAME_HEADER < flen + tag) {
			*want = XY_FRAME_HEADER + (size_t)flen + tag;
			break;
		}
		union xy_msg m;
		char why[256];
		const uint8_t *p = data + pos + XY_FRAME_HEADER;
		if (tag && xy_msgmac_verify(c->mac_in, data + pos,
					    XY_FRAME_HEADER + flen,
					    p + flen) < 0) {
			fail(c, XY_ERR_PROTOCOL,
			     "message %" PRIu64 " (%s) failed its MAC: changed,"
			     " replayed or out of order on the way; dropping"
			     " the connection",
			     xy_msgmac_seq(c->mac_in), xy_msg_name(type));
			break;
		}
		pos += XY_FRAME_HEADER + flen + tag;
		if (xy_msg_decode(type, p, flen, &m, why, sizeof why) < 0) {
			fail(c, XY_ERR_PROTOCOL, "%s", why);
			break;
		}
		dispatch(c, type, &m);
		xy_msg_free(type, &m);
	}
	return pos;
}

/*
 * Reads land in one buffer that a thread's conns share, and a conn keeps
 * in `in` only the start of a frame that has not all come: an idle conn
 * holds no read buffer (10,000 workers would otherwise hold 640 MiB).
 * `busy` guards the buffer while its frames are dispatched, in case a
 * handler ever reads from another conn of the thread's loop.
 */
struct shared_read {
	int busy;
	uint8_t data[READ_CHUNK];
};

static pthread_key_t shared_key;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;
static int shared_ok;

static void shared_key_make(void)
{
	shared_ok = pthread_key_create(&shared_key, free) == 0;
}

/* This thread's buffer, made on first use; NULL if there is no memory. */
static struct shared_read *shared_read(void)
{
	pthread_once(&shared_once, shared_key_make);
	if (!shared_ok)
		return NULL;
	struct shared_read *s = pthread_getspecific(shared_key);
	if (!s && (s = calloc(1, sizeof *s)) &&
	    pthread_setspecific(shared_key, s) != 0) {
		free(s);
		s = NULL;
	}
	return s;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct xy_conn *c = h->data;
	struct shared_read *s;
	(void)suggested;
	if (c->ssl) {
		/* Raw records go straight into OpenSSL's BIO. */
		c->shared_in = (s = shared_read()) && !s->busy;
		if (c->shared_in)
			*buf = uv_buf_init((char *)s->data, sizeof s->data);
		else if (xy_buf_reserve(&c->raw, READ_CHUNK) < 0)
			*buf = uv_buf_init(NULL, 0);
		else
			*buf = uv_buf_init((char *)c->raw.data, READ_CHUNK);
		return;
	}
	c->shared_in = c->in.len == 0 && (s = shared_read()) && !s->busy;
	if (c->shared_in) {
		*buf = uv_buf_init((char *)s->data, sizeof s->data);
		return;
	}
	/* The rest of a frame begun in an earlier read: straight into the
	 * conn's own buffer, made large enough for the frame by read_cb. */
	if (c->in.cap - c->in.len < READ_CHUNK / 2 &&
	    xy_buf_reserve(&c->in, READ_CHUNK) < 0) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	size_t room = c->in.cap - c->in.len;
	*buf = uv_buf_init((char *)c->in.data + c->in.len,
			   room > 0x7fffffff ? 0x7fffffff : (unsigned)room);
}

/* Keeps what parse_frames left of a read, with room for the whole of
 * the frame it begins. */
static void keep_rest(struct xy_conn *c, const uint8_t *rest, size_t n,
		      size_t want)
{
	if (c->closing)
		return;
	if (rest != c->in.data) {
		xy_buf_reset(&c->in);
		xy_buf_put_raw(&c->in, rest, n);
	} else {
		c->in.len = n;
	}
	if (want > n)
		xy_buf_reserve(&c->in, want - n);
	if (c->in.oom)
		fail(c, 0, "out of memory for a frame of %zu bytes", want);
	else if (n == 0)
		xy_buf_free(&c->in); /* idle: the shared buffer serves */
}

/* ---------------------------------------------------------------- TLS */

/* The server's first step of the handshake of auth.h. */
static int send_challenge(struct xy_conn *c)
{
	union xy_msg ch = {.challenge = {.magic = XY_PROTO_MAGIC,
					 .version = XY_PROTO_VERSION}};
	memcpy(ch.challenge.nonce, c->nonce_s, XY_NONCE_LEN);
	return queue(c, &c->out, XY_MSG_CHALLENGE, &ch);
}

static int tls_start(struct xy_conn *c)
{
	if (!(c->ssl = SSL_new(c->opts.tls)) ||
	    !(c->rbio = BIO_new(BIO_s_mem())) ||
	    !(c->wbio = BIO_new(BIO_s_mem()))) {
		BIO_free(c->rbio);
		c->rbio = NULL;
		ERR_clear_error();
		return -1;
	}
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	if (c->server) {
		/* An idle conn holds no record buffers (some 34 KiB
		 * otherwise): a manager keeps thousands of them. A client
		 * (a worker's one conn) keeps its buffers, and saves their
		 * allocation for each record (bench_tls_records). */
		SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
		SSL_set_accept_state(c->ssl);
		return 0;
	}
	SSL_set_connect_state(c->ssl);
	if (xy_tls_expect_host(c->ssl, c->tls_host) < 0) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* The TLS handshake is done: the secret becomes the key bound to this
 * channel, and the handshake of auth.h begins inside it. */
static void tls_established(struct xy_conn *c)
{
	uint8_t binding[XY_TLS_BINDING_LEN];
	uint8_t *key = malloc(XY_MAC_LEN);

	c->tls_up = 1;
	if (!key || xy_tls_binding(c->ssl, binding) < 0) {
		free(key);
		fail(c, 0, "no TLS channel binding");
		return;
	}
	xy_auth_bind_key(c->secret, c->secret_len, binding, key);
	OPENSSL_cleanse(c->secret, c->secret_len);
	free(c->secret);
	c->secret = key;
	c->secret_len = XY_MAC_LEN;
	if (c->server && send_challenge(c) < 0)
		fail(c, 0, "out of memory");
}

/* Advances the TLS handshake: 0, or -1 once it failed (closing). */
static int tls_handshake(struct xy_conn *c)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		tls_established(c);
		flush(c);
		return c->closing ? -1 : 0;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		flush(c);
		return 0;
	}
	char why[256];
	xy_tls_error(c->ssl, why, sizeof why);
	c->refused = 1; /* a certificate or a version: trying again fails */
	fail(c, 0, "TLS handshake failed: %s", why); /* sends the alert */
	return -1;
}

/* Decrypts what OpenSSL has and parses the frames in it. As a plain
 * conn reads, a conn with no partial frame decrypts into the thread's
 * shared buffer and keeps only the start of a frame that has not all
 * come (keep_rest). */
static void tls_read_plain(struct xy_conn *c)
{
	/* Until OpenSSL holds no more bytes: a last SSL_read only to hear
	 * WANT_READ would cost a call a read. */
	while (!c->closing &&
	       (BIO_ctrl_pending(c->rbio) > 0 || SSL_pending(c->ssl) > 0)) {
		struct shared_read *sh = c->in.len ? NULL : shared_read();
		uint8_t *dst;
		if (sh && !sh->busy) {
			dst = sh->data;
		} else if (xy_buf_reserve(&c->in, READ_CHUNK) < 0) {
			fail(c, 0, "out of memory");
			return;
		} else {
			sh = NULL;
			dst = c->in.data + c->in.len;
		}
		int r = SSL_read(c->ssl, dst, READ_CHUNK);
		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);
			char why[256];
			if (e == SSL_ERROR_WANT_READ)
				break;
			if (e == SSL_ERROR_ZERO_RETURN) {
				if (c->state != S_READY)
					log_failure(c, "closed by peer");
				xy_conn_close(c, "closed by peer");
				return;
			}
			fail(c, 0, "TLS: %s",
			     xy_tls_error(c->ssl, why, sizeof why));
			return;
		}
		size_t want, used;
		if (sh) {
			sh->busy = 1;
			used = parse_frames(c, dst, (size_t)r, &want);
			sh->busy = 0;
			keep_rest(c, dst + used, (size_t)r - used, want);
			continue;
		}
		c->in.len += (size_t)r;
		used = parse_frames(c, c->in.data, c->in.len, &want);
		if (used > 0 && !c->closing)
			memmove(c->in.data, c->in.data + used,
				c->in.len - used);
		keep_rest(c, c->in.data, c->in.len - used, want);
	}
}

/* Bytes from the stream on a TLS conn. */
static void tls_input(struct xy_conn *c, const uint8_t *data, size_t n)
{
	if (!c->heard && !xy_tls_looks_tls(data, n)) {
		c->refused = 1;
		fail(c, 0, c->server
				   ? "the peer does not speak TLS (a worker or"
				     " client run with --no-tls?)"
				   : "the manager does not speak TLS (run with"
				     " --no-tls?): give both ends the same"
				     " choice");
		return;
	}
	c->heard = 1;
	if (n > INT32_MAX || BIO_write(c->rbio, data, (int)n) != (int)n) {
		fail(c, 0, "out of memory");
		return;
	}
	if (!c->tls_up && tls_handshake(c) < 0)
		return;
	if (c->tls_up)
		tls_read_plain(c);
	/* What OpenSSL wrote in reading (an alert, a key update) goes with
	 * the handlers' frames, after the turn's I/O callbacks. */
	if (!c->closing && BIO_ctrl_pending(c->wbio) > 0)
		schedule_flush(c);
}

/* A TLS server heard nothing: the peer is likely a plain client waiting
 * for the CHALLENGE. It is told so in a plain ERROR frame. */
static void plain_hint(struct xy_conn *c)
{
	const char *why = "this manager speaks TLS: give the worker or"
			  " client --tls-ca FILE (the manager's ca.crt)";
	union xy_msg m = {.error = {.code = XY_ERR_VERSION,
				    .text = (char *)why}};
	if (!c->writing && xy_msg_encode(&c->wbuf, XY_MSG_ERROR, &m) == 0) {
		uv_buf_t b = uv_buf_init((char *)c->wbuf.data,
					 (unsigned)c->wbuf.len);
		if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1,
			     write_cb) == 0)
			c->writing = 1;
		else
			xy_buf_reset(&c->wbuf);
	}
	log_failure(c, "no TLS hello: a client without TLS?");
	xy_conn_close(c, "no TLS hello");
}

static void read_bytes(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	in_io++;
	read_bytes(s, nread, buf);
	in_io--;
}

static void read_bytes(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct xy_conn *c = s->data;
	if (c->closing)
		return;
	if (nread == UV_EOF) {
		if (c->state != S_READY)
			log_failure(c, "closed by peer");
		xy_conn_close(c, "closed by peer");
		return;
	}
	if (nread < 0) {
		char why[128];
		snprintf(why, sizeof why, "read failed: %s",
			 uv_strerror((int)nread));
		log_failure(c, why);
		xy_conn_close(c, why);
		return;
	}
	if (nread == 0)
		return;
	if (c->ssl) {
		tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
		return;
	}
	if (!c->heard && c->server && xy_tls_looks_tls((uint8_t *)buf->base,
						       (size_t)nread)) {
		c->refused = 1;
		fail(c, XY_ERR_VERSION,
		     "the peer speaks TLS, and this end runs without TLS"
		     " (--no-tls): give both ends the same choice");
		return;
	}
	c->heard = 1;
	size_t want, used;
	const uint8_t *data = (const uint8_t *)buf->base;
	if (c->shared_in) {
		/* The shared buffer (c->in was empty). */
		struct shared_read *sh = shared_read();
		sh->busy = 1;
		used = parse_frames(c, data, (size_t)nread, &want);
		sh->busy = 0;
		keep_rest(c, data + used, (size_t)nread - used, want);
		return;
	}
	c->in.len += (size_t)nread;
	used = parse_frames(c, c->in.data, c->in.len, &want);
	if (used > 0 && !c->closing)
		memmove(c->in.data, c->in.data + used, c->in.len - used);
	keep_rest(c, c->in.data, c->in.len - used, want);
}

static void timer_cb(uv_timer_t *t)
{
	struct xy_conn *c = t->data;
	if (c->closing)
		finish_close(c); /* the flush at close took too long */
	else if (c->ssl && c->server && !c->hint_done) {
		c->hint_done = 1;
		if (!c->heard)
			plain_hint(c);
		else
			uv_timer_start(t, timer_cb,
				       HANDSHAKE_MS - PLAIN_HINT_MS, 0);
	} else if (c->state != S_READY)
		fail(c, XY_ERR_TIMEOUT, "handshake timed out");
}

/* Allocates a conn and initialises its two handles on loop. */
static struct xy_conn *conn_new(uv_loop_t *loop,
				const struct xy_conn_opts *opts)
{
	struct xy_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->opts = *opts;
	c->secret_len = opts->secret_len;
	c->secret = malloc(opts->secret_len ? opts->secret_len : 1);
	if (!c->secret) {
		free(c);
		return NULL;
	}
	if (opts->secret_len)
		memcpy(c->secret, opts->secret, opts->secret_len);
	xy_buf_init(&c->in);
	xy_buf_init(&c->out);
	xy_buf_init(&c->wbuf);
	xy_buf_init(&c->held);
	snprintf(c->peer, sizeof c->peer, "?");
	snprintf(c->peer_ip, sizeof c->peer_ip, "?");
	uv_tcp_init(loop, &c->tcp);
	uv_timer_init(loop, &c->timer);
	uv_check_init(loop, &c->check);
	c->check.data = c;
	c->tcp.data = c;
	c->timer.data = c;
	c->wreq.data = c;
	c->creq.data = c;
	c->gai.data = c;
	return c;
}

static void tune_socket(struct xy_conn *c)
{
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_S);
}

struct xy_conn *xy_conn_accept(uv_stream_t *server,
			       const struct xy_conn_opts *opts)
{
	struct xy_conn *c = conn_new(server->loop, opts);
	if (!c)
		return NULL;
	c->server = 1;
	c->state = S_AWAIT_AUTH;
	struct sockaddr_storage ss;
	int sslen = sizeof ss;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
	    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) < 0 ||
	    xy_random(c->nonce_s, XY_NONCE_LEN) < 0 ||
	    (opts->tls && tls_start(c) < 0) ||
	    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0)
		goto error;
	set_peer(c, (struct sockaddr *)&ss);
	tune_socket(c);
	if (!c->ssl && (send_challenge(c) < 0 || c->shut))
		goto error;
	uv_timer_start(&c->timer, timer_cb,
		       c->ssl ? PLAIN_HINT_MS : HANDSHAKE_MS, 0);
	return c;
error:
	c->silent = 1;
	c->closing = 1;
	finish_close(c);
	return NULL;
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct xy_conn *c = req->data;
	if (status == UV_ECANCELED || c->closing)
		return;
	if (status < 0) {
		char why[256];
		snprintf(why, sizeof why, "cannot connect: %s",
			 uv_strerror(status));
		log_failure(c, why);
		xy_conn_close(c, why);
		return;
	}
	tune_socket(c);
	c->state = S_AWAIT_CHALLENGE;
	if (c->opts.tls && tls_start(c) < 0) {
		fail(c, 0, "cannot start TLS: out of memory");
		return;
	}
	int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (rc < 0) {
		fail(c, 0, "cannot read: %s", uv_strerror(rc));
		return;
	}
	if (c->ssl)
		tls_handshake(c); /* the client's hello */
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
	struct xy_conn *c = req->data;
	c->gai_pending = 0;
	if (c->closing) {
		uv_freeaddrinfo(ai);
		if (c->closed)
			conn_free(c);
		return;
	}
	if (status < 0 || !ai) {
		char why[256];
		snprintf(why, sizeof why, "cannot resolve: %s",
			 uv_strerror(status));
		log_failure(c, why);
		uv_freeaddrinfo(ai);
		xy_conn_close(c, why);
		return;
	}
	/* One attempt per conn: prefer IPv4, which a listener on 0.0.0.0
	 * and a dual-stack one on :: both accept. */
	const struct addrinfo *pick = ai;
	for (const struct addrinfo *a = ai; a; a = a->ai_next)
		if (a->ai_family == AF_INET) {
			pick = a;
			break;
		}
	set_peer(c, pick->ai_addr);
	int rc = uv_tcp_connect(&c->creq, &c->tcp, pick->ai_addr, connect_cb);
	uv_freeaddrinfo(ai);
	if (rc < 0) {
		char why[256];
		snprintf(why, sizeof why, "cannot connect: %s",
			 uv_strerror(rc));
		log_failure(c, why);
		xy_conn_close(c, why);
	}
}

struct xy_conn *xy_conn_connect(uv_loop_t *loop, const char *host, int port,
				const struct xy_conn_opts *opts)
{
	struct xy_conn *c = conn_new(loop, opts);
	if (!c)
		return NULL;
	c->state = S_CONNECTING;
	snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
	snprintf(c->peer_ip, sizeof c->peer_ip, "%s", host);
	snprintf(c->tls_host, sizeof c->tls_host, "%s", host);
	uv_timer_start(&c->timer, timer_cb, HANDSHAKE_MS, 0);
	char portstr[16];
	snprintf(portstr, sizeof portstr, "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM};
	int rc = uv_getaddrinfo(loop, &c->gai, gai_cb, host, portstr, &hints);
	if (rc < 0) {
		char why[256];
		snprintf(why, sizeof why, "cannot resolve: %s",
			 uv_strerror(rc));
		log_failure(c, why);
		xy_conn_close(c, why);
	} else {
		c->gai_pending = 1;
	}
	return c;
}

int xy_conn_send(struct xy_conn *c, unsigned type, const union xy_msg *m)
{
	if (c->closing) {
		errno = EPIPE;
		return -1;
	}
	return queue(c, c->state == S_READY ? &c->out : &c->held, type, m);
}

void xy_conn_close(struct xy_conn *c, const char *reason)
{
	if (c->closing)
		return;
	c->closing = 1;
	snprintf(c->reason, sizeof c->reason, "%s", reason ? reason : "closed");
	if (c->gai_pending)
		uv_cancel((uv_req_t *)&c->gai);
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (c->state != S_CONNECTING)
		flush(c);
	if (c->writing) {
		/* Let queued frames (an ERROR, a SHUTDOWN) reach the peer,
		 * but not for ever. */
		uv_timer_start(&c->timer, timer_cb, CLOSE_FLUSH_MS, 0);
		return;
	}
	finish_close(c);
}

int xy_conn_closing(const struct xy_conn *c)
{
	return c->closing;
}

int xy_conn_refused(const struct xy_conn *c)
{
	return c->refused;
}

void *xy_conn_data(const struct xy_conn *c)
{
	return c->opts.data;
}

void xy_conn_set_data(struct xy_conn *c, void *data)
{
	c->opts.data = data;
}

const char *xy_conn_peer(const struct xy_conn *c)
{
	return c->peer;
}

const char *xy_conn_peer_ip(const struct xy_conn *c)
{
	return c->peer_ip;
}

int xy_conn_local_ip(const struct xy_conn *c, char *ip, size_t len)
{
	struct sockaddr_storage ss;
	int n = sizeof ss;

	if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &n) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return uv_ip6_name((struct sockaddr_in6 *)&ss, ip, len) ? -1 : 0;
	return uv_ip4_name((struct sockaddr_in *)&ss, ip, len) ? -1 : 0;
}

uint8_t xy_conn_role(const struct xy_conn *c)
{
	return c->role;
}

size_t xy_conn_pending(const struct xy_conn *c)
{
	return c->out.len + c->wbuf.len + c->held.len +
	       (c->wbio ? BIO_ctrl_pending(c->wbio) : 0);
}

size_t xy_conn_memory(const struct xy_conn *c)
{
	return c->in.cap + c->out.cap + c->wbuf.cap + c->held.cap +
	       c->raw.cap;
}
