/*
 * auth.c: the HMAC challenge and response of auth.h, transfer tokens, and
 * blocking frame I/O with deadlines for transfer connections (xfer.c).
 * conn.c runs the same exchange on libuv streams with the MAC helpers here.
 */
#include "auth.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "log.h"
#include "util.h"

#define LABEL_LEN 7
#define PREAUTH_MAX 1024

int xy_random(void *out, size_t n)
{
	if (n > 0x7fffffff || RAND_bytes(out, (int)n) != 1) {
		errno = EIO;
		return -1;
	}
	return 0;
}

/*
 * HMAC-SHA256 of msg under secret. It fails closed: if OpenSSL cannot
 * compute it, out gets random bytes (or, without those, bytes of this
 * process's own that no peer can know), never a value that another
 * party could compute too, so the MAC it stands for is refused.
 */
static void hmac(const void *secret, size_t secret_len, const uint8_t *msg,
		 size_t n, uint8_t out[XY_MAC_LEN])
{
	unsigned int outlen = XY_MAC_LEN;
	/* A zero-length key is legal for HMAC, but OpenSSL wants a non-NULL
	 * pointer. */
	static const uint8_t empty;
	if (secret_len <= INT_MAX &&
	    HMAC(EVP_sha256(), secret_len ? secret : &empty, (int)secret_len,
		 msg, n, out, &outlen) && outlen == XY_MAC_LEN)
		return;
	char why[256];
	ERR_error_string_n(ERR_get_error(), why, sizeof why);
	XY_LOGE("auth", "HMAC-SHA256 failed (%s): the MAC is refused", why);
	if (RAND_bytes(out, XY_MAC_LEN) == 1)
		return;
	uint64_t mix[4] = {xy_mono_us(), (uint64_t)(uintptr_t)out,
			   (uint64_t)getpid(), (uint64_t)(uintptr_t)msg};
	memcpy(out, mix, XY_MAC_LEN);
}

void xy_auth_mac(const void *secret, size_t secret_len, char which,
		 uint8_t role, const uint8_t a[XY_NONCE_LEN],
		 const uint8_t b[XY_NONCE_LEN], uint8_t out[XY_MAC_LEN])
{
	uint8_t msg[LABEL_LEN + 1 + 2 * XY_NONCE_LEN];
	memcpy(msg, which == 's' ? "xylem-s" : "xylem-c", LABEL_LEN);
	msg[LABEL_LEN] = role;
	memcpy(msg + LABEL_LEN + 1, a, XY_NONCE_LEN);
	memcpy(msg + LABEL_LEN + 1 + XY_NONCE_LEN, b, XY_NONCE_LEN);
	hmac(secret, secret_len, msg, sizeof msg, out);
}

void xy_auth_bind_key(const void *secret, size_t secret_len,
		      const uint8_t binding[32], uint8_t out[XY_MAC_LEN])
{
	uint8_t msg[LABEL_LEN + 32];
	memcpy(msg, "xylem-b", LABEL_LEN);
	memcpy(msg + LABEL_LEN, binding, 32);
	hmac(secret, secret_len, msg, sizeof msg, out);
}

void xy_auth_msg_key(const void *secret, size_t secret_len, char dir,
		     const uint8_t nonce_s[XY_NONCE_LEN],
		     const uint8_t nonce_c[XY_NONCE_LEN],
		     uint8_t out[XY_MAC_LEN])
{
	uint8_t msg[LABEL_LEN + 1 + 2 * XY_NONCE_LEN];
	memcpy(msg, "xylem-m", LABEL_LEN);
	msg[LABEL_LEN] = (uint8_t)dir;
	memcpy(msg + LABEL_LEN + 1, nonce_s, XY_NONCE_LEN);
	memcpy(msg + LABEL_LEN + 1 + XY_NONCE_LEN, nonce_c, XY_NONCE_LEN);
	hmac(secret, secret_len, msg, sizeof msg, out);
}

int xy_auth_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) ? -1 : 0;
}

static void token_mac(const void *secret, size_t secret_len,
		      const uint8_t id[XY_ID_LEN], const uint8_t expiry[8],
		      const char *name, uint8_t out[XY_MAC_LEN])
{
	size_t n = name ? strlen(name) : 0;
	if (n > XY_MAX_NAME)
		n = XY_MAX_NAME;
	uint8_t msg[LABEL_LEN + XY_ID_LEN + 8 + XY_MAX_NAME];
	memcpy(msg, "xylem-t", LABEL_LEN);
	memcpy(msg + LABEL_LEN, id, XY_ID_LEN);
	memcpy(msg + LABEL_LEN + XY_ID_LEN, expiry, 8);
	if (n)
		memcpy(msg + LABEL_LEN + XY_ID_LEN + 8, name, n);
	hmac(secret, secret_len, msg, LABEL_LEN + XY_ID_LEN + 8 + n, out);
}

void xy_token_make(const void *secret, size_t secret_len,
		   const uint8_t id[XY_ID_LEN], uint64_t expiry_us,
		   const char *name, uint8_t out[XY_TOKEN_LEN])
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(expiry_us >> (8 * i));
	token_mac(secret, secret_len, id, out, name, out + 8);
}

void xy_token_issue(const void *secret, size_t secret_len, uint64_t *last,
		    const uint8_t id[XY_ID_LEN], const char *name,
		    uint8_t out[XY_TOKEN_LEN])
{
	uint64_t e = (uint64_t)(xy_now() * 1e6) + XY_TOKEN_TTL_US;
	if (e <= *last)
		e = *last + 1;
	*last = e;
	xy_token_make(secret, secret_len, id, e, name, out);
}

uint64_t xy_token_expiry(const uint8_t tok[XY_TOKEN_LEN])
{
	uint64_t expiry = 0;
	for (int i = 0; i < 8; i++)
		expiry |= (uint64_t)tok[i] << (8 * i);
	return expiry;
}

int xy_token_check(const void *secret, size_t secret_len,
		   const uint8_t id[XY_ID_LEN], const char *name,
		   const uint8_t tok[XY_TOKEN_LEN], uint64_t now_us)
{
	uint8_t want[XY_MAC_LEN];
	token_mac(secret, secret_len, id, tok, name, want);
	if (xy_auth_equal(want, tok + 8, XY_MAC_LEN) != 0) {
		errno = EACCES;
		return -1;
	}
	if (now_us > xy_token_expiry(tok)) {
		errno = ETIMEDOUT;
		return -1;
	}
	return 0;
}

/* Milliseconds left until deadline (xy_mono_us), or -1 for no deadline. */
static int left_ms(uint64_t deadline)
{
	if (!deadline)
		return -1;
	uint64_t now = xy_mono_us();
	if (now >= deadline)
		return 0;
	uint64_t ms = (deadline - now + 999) / 1000;
	return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? 0 : xy_mono_us() + (uint64_t)timeout_ms * 1000;
}

/* Waits until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	for (;;) {
		int ms = left_ms(deadline);
		int n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

int xy_fd_write_all(int fd, const void *p, size_t n, int timeout_ms)
{
	const uint8_t *s = p;
	uint64_t deadline = deadline_of(timeout_ms);
	while (n > 0) {
		if (wait_fd(fd, POLLOUT, deadline) < 0)
			return -1;
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == ENOTSOCK)
			w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int xy_fd_read_all(int fd, void *p, size_t n, int timeout_ms)
{
	uint8_t *d = p;
	uint64_t deadline = deadline_of(timeout_ms);
	while (n > 0) {
		if (wait_fd(fd, POLLIN, deadline) < 0)
			return -1;
		ssize_t r = recv(fd, d, n, MSG_DONTWAIT);
		if (r < 0 && errno == ENOTSOCK)
			r = read(fd, d, n);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		d += r;
		n -= (size_t)r;
	}
	return 0;
}

int xy_fd_send_msg(int fd, unsigned type, const union xy_msg *m,
		   int timeout_ms, char *err, size_t errlen)
{
	struct xy_buf b;
	xy_buf_init(&b);
	if (xy_msg_encode(&b, type, m) < 0) {
		int e = errno;
		xy_buf_free(&b);
		return xy_fail(err, errlen, e, "cannot encode %s: %s",
			       xy_msg_name(type), strerror(e));
	}
	int rc = xy_fd_write_all(fd, b.data, b.len, timeout_ms);
	int e = errno;
	xy_buf_free(&b);
	if (rc < 0)
		return xy_fail(err, errlen, e, "cannot send %s: %s",
			       xy_msg_name(type), strerror(e));
	return 0;
}

/* Reads a frame's payload into a fresh buffer and decodes it. */
static int recv_payload(int fd, uint16_t type, uint32_t len, union xy_msg *m,
			uint64_t deadline, char *err, size_t errlen)
{
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	if (xy_fd_read_all(fd, p, len, left_ms(deadline)) < 0) {
		int e = errno;
		free(p);
		return xy_fail(err, errlen, e, "reading %s: %s",
			       xy_msg_name(type), strerror(e));
	}
	int rc = xy_msg_decode(type, p, len, m, err, errlen);
	free(p);
	return rc;
}

int xy_fd_recv_msg(int fd, unsigned expect, union xy_msg *m, uint32_t max,
		   int timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline = deadline_of(timeout_ms);
	uint8_t hdr[XY_FRAME_HEADER];
	uint32_t len;
	uint16_t type;
	memset(m, 0, sizeof *m);
	if (xy_fd_read_all(fd, hdr, sizeof hdr, timeout_ms) < 0) {
		int e = errno;
		return xy_fail(err, errlen, e, "waiting for %s: %s",
			       xy_msg_name(expect),
			       e == ECONNRESET ? "connection closed"
					       : strerror(e));
	}
	if (xy_frame_parse(hdr, &len, &type) < 0)
		return xy_fail(err, errlen, EPROTO, "bad frame header");
	if (len > max)
		return xy_fail(err, errlen, EPROTO,
			       "%s frame of %u bytes exceeds %u",
			       xy_msg_name(type), len, max);
	if (type == XY_MSG_ERROR && expect != XY_MSG_ERROR) {
		union xy_msg e;
		if (recv_payload(fd, type, len, &e, deadline, err, errlen) < 0)
			return -1;
		xy_fail(err, errlen, ECONNREFUSED, "refused by peer: %s",
			e.error.text ? e.error.text : "");
		xy_msg_free(type, &e);
		return -1;
	}
	if (type != expect)
		return xy_fail(err, errlen, EPROTO, "expected %s, got %s",
			       xy_msg_name(expect), xy_msg_name(type));
	return recv_payload(fd, type, len, m, deadline, err, errlen);
}

/* Best effort: tells the peer why before the caller closes. */
static void send_error(int fd, uint32_t code, const char *text)
{
	union xy_msg m = {.error = {.code = code, .text = (char *)text}};
	xy_fd_send_msg(fd, XY_MSG_ERROR, &m, 1000, NULL, 0);
}

int xy_auth_client_fd(int fd, const void *secret, size_t secret_len,
		      uint8_t role, int timeout_ms, char *err, size_t errlen)
{
	return xy_auth_client_fd_nonces(fd, secret, secret_len, role,
					timeout_ms, NULL, NULL, err, errlen);
}

int xy_auth_client_fd_nonces(int fd, const void *secret, size_t secret_len,
			     uint8_t role, int timeout_ms,
			     uint8_t nonce_s[XY_NONCE_LEN],
			     uint8_t nonce_c[XY_NONCE_LEN], char *err,
			     size_t errlen)
{
	uint64_t deadline = deadline_of(timeout_ms);
	union xy_msg ch, au = {0}, ok;
	if (xy_fd_recv_msg(fd, XY_MSG_CHALLENGE, &ch, PREAUTH_MAX, timeout_ms,
			   err, errlen) < 0)
		return -1;
	if (ch.challenge.magic != XY_PROTO_MAGIC ||
	    ch.challenge.version != XY_PROTO_VERSION) {
		send_error(fd, XY_ERR_VERSION, "version mismatch");
		return xy_fail(err, errlen, EPROTO,
			       "server speaks protocol version %u, not %u",
			       ch.challenge.version, XY_PROTO_VERSION);
	}
	au.auth.version = XY_PROTO_VERSION;
	au.auth.role = role;
	if (xy_random(au.auth.nonce, XY_NONCE_LEN) < 0)
		return xy_fail(err, errlen, EIO, "no random bytes");
	xy_auth_mac(secret, secret_len, 'c', role, ch.challenge.nonce,
		    au.auth.nonce, au.auth.mac);
	if (xy_fd_send_msg(fd, XY_MSG_AUTH, &au, left_ms(deadline), err,
			   errlen) < 0)
		return -1;
	if (xy_fd_recv_msg(fd, XY_MSG_AUTH_OK, &ok, PREAUTH_MAX,
			   left_ms(deadline), err, errlen) < 0)
		return -1;
	uint8_t want[XY_MAC_LEN];
	xy_auth_mac(secret, secret_len, 's', role, au.auth.nonce,
		    ch.challenge.nonce, want);
	if (xy_auth_equal(want, ok.auth_ok.mac, XY_MAC_LEN) != 0)
		return xy_fail(err, errlen, EACCES,
			       "server did not prove the secret");
	if (nonce_s)
		memcpy(nonce_s, ch.challenge.nonce, XY_NONCE_LEN);
	if (nonce_c)
		memcpy(nonce_c, au.auth.nonce, XY_NONCE_LEN);
	return 0;
}

int xy_auth_server_fd(int fd, const void *secret, size_t secret_len,
		      uint8_t *role, int timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline = deadline_of(timeout_ms);
	union xy_msg ch = {0}, au, ok = {0};
	ch.challenge.magic = XY_PROTO_MAGIC;
	ch.challenge.version = XY_PROTO_VERSION;
	if (xy_random(ch.challenge.nonce, XY_NONCE_LEN) < 0)
		return xy_fail(err, errlen, EIO, "no random bytes");
	if (xy_fd_send_msg(fd, XY_MSG_CHALLENGE, &ch, timeout_ms, err,
			   errlen) < 0)
		return -1;
	if (xy_fd_recv_msg(fd, XY_MSG_AUTH, &au, PREAUTH_MAX,
			   left_ms(deadline), err, errlen) < 0) {
		send_error(fd, XY_ERR_PROTOCOL,
			   err && errlen ? err : "protocol error");
		return -1;
	}
	if (au.auth.version != XY_PROTO_VERSION) {
		send_error(fd, XY_ERR_VERSION, "version mismatch");
		return xy_fail(err, errlen, EPROTO,
			       "client speaks protocol version %u, not %u",
			       au.auth.version, XY_PROTO_VERSION);
	}
	uint8_t want[XY_MAC_LEN];
	xy_auth_mac(secret, secret_len, 'c', au.auth.role, ch.challenge.nonce,
		    au.auth.nonce, want);
	if (xy_auth_equal(want, au.auth.mac, XY_MAC_LEN) != 0) {
		send_error(fd, XY_ERR_AUTH, "bad secret");
		return xy_fail(err, errlen, EACCES, "bad secret");
	}
	xy_auth_mac(secret, secret_len, 's', au.auth.role, au.auth.nonce,
		    ch.challenge.nonce, ok.auth_ok.mac);
	if (xy_fd_send_msg(fd, XY_MSG_AUTH_OK, &ok, left_ms(deadline), err,
			   errlen) < 0)
		return -1;
	if (role)
		*role = au.auth.role;
	return 0;
}
