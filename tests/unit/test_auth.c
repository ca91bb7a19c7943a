/*
 * test_auth.c: unit tests for auth.h: the handshake MACs, transfer tokens,
 * and the blocking handshake and frame I/O over a socketpair.
 */
#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "harness.h"
#include "msgmac.h"
#include "util.h"

static const char secret[] = "correct horse";

static void t_random(void)
{
	uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};
	XY_CHECK_EQ(xy_random(a, sizeof a), 0);
	XY_CHECK_EQ(xy_random(b, sizeof b), 0);
	XY_CHECK(memcmp(a, b, 32) != 0);
	XY_CHECK(memcmp(a, zero, 32) != 0);
}

static void t_mac_layout(void)
{
	uint8_t a[XY_NONCE_LEN], b[XY_NONCE_LEN], mac[XY_MAC_LEN];
	memset(a, 0x11, sizeof a);
	memset(b, 0x22, sizeof b);
	xy_auth_mac(secret, strlen(secret), 'c', XY_ROLE_WORKER, a, b, mac);

	/* The same MAC computed from the documented layout. */
	uint8_t msg[7 + 1 + 64], want[32];
	unsigned wlen = 32;
	memcpy(msg, "xylem-c", 7);
	msg[7] = XY_ROLE_WORKER;
	memcpy(msg + 8, a, 32);
	memcpy(msg + 40, b, 32);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, sizeof msg, want,
	     &wlen);
	XY_CHECK(!memcmp(mac, want, 32));
	XY_CHECK_EQ(xy_auth_equal(mac, want, 32), 0);

	/* Every input changes it. */
	uint8_t other[XY_MAC_LEN];
	xy_auth_mac(secret, strlen(secret), 's', XY_ROLE_WORKER, a, b, other);
	XY_CHECK(xy_auth_equal(mac, other, 32) != 0);
	xy_auth_mac(secret, strlen(secret), 'c', XY_ROLE_STATUS, a, b, other);
	XY_CHECK(xy_auth_equal(mac, other, 32) != 0);
	xy_auth_mac(secret, strlen(secret), 'c', XY_ROLE_WORKER, b, a, other);
	XY_CHECK(xy_auth_equal(mac, other, 32) != 0);
	xy_auth_mac("x", 1, 'c', XY_ROLE_WORKER, a, b, other);
	XY_CHECK(xy_auth_equal(mac, other, 32) != 0);
	/* An empty secret still works (and differs). */
	xy_auth_mac("", 0, 'c', XY_ROLE_WORKER, a, b, other);
	XY_CHECK(xy_auth_equal(mac, other, 32) != 0);
}

/* The message MACs of connections without TLS (msgmac.h): the
 * documented layout (key from the secret, direction and nonces; GMAC
 * with the sequence number as nonce), checked against OpenSSL directly;
 * a replay, a frame out of order, the other direction's key, another
 * connection's nonces: refused. */
static void t_msgmac(void)
{
	uint8_t ns[XY_NONCE_LEN], nc[XY_NONCE_LEN], key[32], t[2][16];
	const uint8_t f0[] = "frame zero", f1[] = "frame one";
	memset(ns, 0x33, sizeof ns);
	memset(nc, 0x44, sizeof nc);
	struct xy_msgmac *s = xy_msgmac_create(secret, strlen(secret), 'c',
					       ns, nc);
	XY_CHECK(s != NULL);
	XY_CHECK_EQ(xy_msgmac_sign(s, f0, sizeof f0, t[0]), 0);
	XY_CHECK_EQ(xy_msgmac_sign(s, f1, sizeof f1, t[1]), 0);

	/* The layout: key = HMAC(secret, "xylem-m" 'c' ns nc); the tag of
	 * frame 1 is AES-256-GCM's with nonce 0^4 || 1 (LE), f1 as AAD. */
	uint8_t msg[7 + 1 + 64], iv[12] = {0}, want[16], fin[16];
	unsigned klen = 32;
	int n;
	memcpy(msg, "xylem-m", 7);
	msg[7] = 'c';
	memcpy(msg + 8, ns, 32);
	memcpy(msg + 40, nc, 32);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, sizeof msg, key,
	     &klen);
	iv[4] = 1;
	EVP_CIPHER_CTX *g = EVP_CIPHER_CTX_new();
	XY_CHECK_EQ(EVP_EncryptInit_ex(g, EVP_aes_256_gcm(), NULL, key, iv), 1);
	XY_CHECK_EQ(EVP_EncryptUpdate(g, NULL, &n, f1, sizeof f1), 1);
	XY_CHECK_EQ(EVP_EncryptFinal_ex(g, fin, &n), 1);
	XY_CHECK_EQ(EVP_CIPHER_CTX_ctrl(g, EVP_CTRL_GCM_GET_TAG, 16, want), 1);
	EVP_CIPHER_CTX_free(g);
	XY_CHECK(!memcmp(want, t[1], 16));

	/* In order: accepted; again, or out of order: refused. */
	struct xy_msgmac *r = xy_msgmac_create(secret, strlen(secret), 'c',
					       ns, nc);
	XY_CHECK_EQ(xy_msgmac_verify(r, f1, sizeof f1, t[1]), -1);
	XY_CHECK_EQ(xy_msgmac_seq(r), 0);
	XY_CHECK_EQ(xy_msgmac_verify(r, f0, sizeof f0, t[0]), 0);
	XY_CHECK_EQ(xy_msgmac_verify(r, f0, sizeof f0, t[0]), -1);
	XY_CHECK_EQ(xy_msgmac_verify(r, f1, sizeof f1, t[1]), 0);
	XY_CHECK_EQ(xy_msgmac_seq(r), 2);
	xy_msgmac_destroy(r);
	/* The other direction, or other nonces: another key. */
	r = xy_msgmac_create(secret, strlen(secret), 's', ns, nc);
	XY_CHECK_EQ(xy_msgmac_verify(r, f0, sizeof f0, t[0]), -1);
	xy_msgmac_destroy(r);
	nc[0] ^= 1;
	r = xy_msgmac_create(secret, strlen(secret), 'c', ns, nc);
	XY_CHECK_EQ(xy_msgmac_verify(r, f0, sizeof f0, t[0]), -1);
	xy_msgmac_destroy(r);
	xy_msgmac_destroy(s);
	xy_msgmac_destroy(NULL);
}

/* An HMAC that OpenSSL cannot compute (a key longer than it takes)
 * fails closed: never all zeros, never the same twice, so that no peer
 * could send it. Before, both sides computed zeros, which matched. */
static void t_mac_fails_closed(void)
{
	uint8_t a[XY_NONCE_LEN] = {0}, b[XY_NONCE_LEN] = {0};
	uint8_t m1[XY_MAC_LEN], m2[XY_MAC_LEN], zero[XY_MAC_LEN] = {0};
	size_t huge = (size_t)INT_MAX + 1; /* refused before it is read */
	xy_auth_mac(secret, huge, 'c', XY_ROLE_WORKER, a, b, m1);
	xy_auth_mac(secret, huge, 'c', XY_ROLE_WORKER, a, b, m2);
	XY_CHECK(xy_auth_equal(m1, zero, XY_MAC_LEN) != 0);
	XY_CHECK(xy_auth_equal(m1, m2, XY_MAC_LEN) != 0);
	/* A token made so is refused by a checker that also fails. */
	uint8_t id[XY_ID_LEN] = {1}, tok[XY_TOKEN_LEN];
	uint64_t later = (uint64_t)(xy_now() + 60) * 1000000;
	xy_token_make(secret, huge, id, later, "w1", tok);
	XY_CHECK(xy_token_check(secret, huge, id, "w1", tok,
				(uint64_t)xy_now() * 1000000) < 0);
}

static void t_tokens(void)
{
	uint8_t id[XY_ID_LEN], tok[XY_TOKEN_LEN];
	memset(id, 0x42, sizeof id);
	uint64_t expiry = 1700000000;
	xy_token_make(secret, strlen(secret), id, expiry, "w1", tok);
	/* Expiry first, little-endian. */
	XY_CHECK_EQ(tok[0], expiry & 0xff);
	XY_CHECK_EQ(tok[3], (expiry >> 24) & 0xff);
	XY_CHECK_EQ(xy_token_check(secret, strlen(secret), id, "w1", tok, expiry - 5),
		    0);
	XY_CHECK_EQ(xy_token_check(secret, strlen(secret), id, "w1", tok, expiry),
		    0);
	/* Expired. */
	XY_CHECK_EQ(xy_token_check(secret, strlen(secret), id, "w1", tok, expiry + 1),
		    -1);
	XY_CHECK_EQ(errno, ETIMEDOUT);
	/* Wrong secret, wrong id. */
	XY_CHECK_EQ(xy_token_check("nope", 4, id, "w1", tok, expiry - 5), -1);
	XY_CHECK_EQ(errno, EACCES);
	uint8_t id2[XY_ID_LEN];
	memcpy(id2, id, sizeof id2);
	id2[31] ^= 1;
	XY_CHECK_EQ(xy_token_check(secret, strlen(secret), id2, "w1", tok, 0), -1);
	/* Bound to the receiver's name. */
	XY_CHECK_EQ(xy_token_check(secret, strlen(secret), id, "w2", tok, 0), -1);
	XY_CHECK_EQ(errno, EACCES);
	XY_CHECK_EQ(xy_token_check(secret, strlen(secret), id, "", tok, 0), -1);
	/* Tampered MAC byte, and an extended expiry. */
	for (int i = 0; i < XY_TOKEN_LEN; i++) {
		uint8_t t2[XY_TOKEN_LEN];
		memcpy(t2, tok, sizeof t2);
		t2[i] ^= 0x80;
		XY_CHECK_EQ(xy_token_check(secret, strlen(secret), id, "w1", t2,
					   expiry - 5), -1);
	}
}

struct side {
	int fd;
	const char *secret;
	uint8_t role;
	int rc;
	char err[256];
};

static void *server_thread(void *arg)
{
	struct side *s = arg;
	s->rc = xy_auth_server_fd(s->fd, s->secret, strlen(s->secret),
				  &s->role, 5000, s->err, sizeof s->err);
	return NULL;
}

static void handshake(const char *client_secret, struct side *srv,
		      struct side *cli)
{
	int sv[2];
	XY_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	srv->fd = sv[0];
	srv->secret = secret;
	srv->role = 0;
	cli->fd = sv[1];
	pthread_t th;
	XY_CHECK_EQ(pthread_create(&th, NULL, server_thread, srv), 0);
	cli->rc = xy_auth_client_fd(cli->fd, client_secret,
				    strlen(client_secret), XY_ROLE_TRANSFER,
				    5000, cli->err, sizeof cli->err);
	pthread_join(th, NULL);
}

static void t_handshake_ok(void)
{
	struct side srv, cli;
	handshake(secret, &srv, &cli);
	XY_CHECK_EQ(srv.rc, 0);
	XY_CHECK_EQ(cli.rc, 0);
	XY_CHECK_EQ(srv.role, XY_ROLE_TRANSFER);

	/* The connection carries frames afterwards. */
	union xy_msg m = {.cancel = {.task_id = 99}}, d;
	char err[256];
	XY_CHECK_EQ(xy_fd_send_msg(cli.fd, XY_MSG_CANCEL, &m, 1000, err,
				   sizeof err), 0);
	XY_CHECK_EQ(xy_fd_recv_msg(srv.fd, XY_MSG_CANCEL, &d, 1024, 1000, err,
				   sizeof err), 0);
	XY_CHECK_EQ(d.cancel.task_id, 99);
	close(srv.fd);
	close(cli.fd);
}

static void t_handshake_wrong_secret(void)
{
	struct side srv, cli;
	handshake("wrong", &srv, &cli);
	XY_CHECK_EQ(srv.rc, -1);
	XY_CHECK(strstr(srv.err, "bad secret"));
	XY_CHECK_EQ(cli.rc, -1);
	XY_CHECK(strstr(cli.err, "bad secret"));
	XY_CHECK_EQ(srv.role, 0);
	close(srv.fd);
	close(cli.fd);
}

/* A server that answers with an AUTH_OK whose MAC is wrong. */
static void *fake_server(void *arg)
{
	int fd = *(int *)arg;
	union xy_msg ch = {.challenge = {XY_PROTO_MAGIC, XY_PROTO_VERSION,
					 {0}}};
	union xy_msg au, ok = {.auth_ok = {{0}}};
	xy_fd_send_msg(fd, XY_MSG_CHALLENGE, &ch, 1000, NULL, 0);
	xy_fd_recv_msg(fd, XY_MSG_AUTH, &au, 1024, 1000, NULL, 0);
	xy_fd_send_msg(fd, XY_MSG_AUTH_OK, &ok, 1000, NULL, 0);
	return NULL;
}

static void t_client_checks_server_mac(void)
{
	int sv[2];
	XY_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pthread_t th;
	pthread_create(&th, NULL, fake_server, &sv[0]);
	char err[256];
	XY_CHECK_EQ(xy_auth_client_fd(sv[1], secret, strlen(secret),
				      XY_ROLE_WORKER, 2000, err, sizeof err),
		    -1);
	XY_CHECK(strstr(err, "did not prove"));
	pthread_join(th, NULL);
}

static void t_client_timeout(void)
{
	int sv[2];
	XY_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char err[256];
	uint64_t t0 = xy_mono_us();
	XY_CHECK_EQ(xy_auth_client_fd(sv[1], secret, strlen(secret),
				      XY_ROLE_WORKER, 200, err, sizeof err),
		    -1);
	uint64_t dt = xy_mono_us() - t0;
	XY_CHECK(dt >= 150000 && dt < 2000000);
	XY_CHECK_EQ(errno, ETIMEDOUT);
}

static void t_recv_checks(void)
{
	int sv[2];
	XY_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	union xy_msg m = {.error = {.code = 1, .text = "go away"}}, d;
	char err[256];
	/* An ERROR where something else was expected: its text is the
	 * reason. */
	xy_fd_send_msg(sv[0], XY_MSG_ERROR, &m, 1000, NULL, 0);
	XY_CHECK_EQ(xy_fd_recv_msg(sv[1], XY_MSG_OBJECT, &d, 1024, 1000, err,
				   sizeof err), -1);
	XY_CHECK(strstr(err, "go away"));
	/* The wrong type. */
	m.cancel.task_id = 5;
	xy_fd_send_msg(sv[0], XY_MSG_CANCEL, &m, 1000, NULL, 0);
	XY_CHECK_EQ(xy_fd_recv_msg(sv[1], XY_MSG_OBJECT, &d, 1024, 1000, err,
				   sizeof err), -1);
	XY_CHECK(strstr(err, "expected OBJECT"));
	close(sv[1]);
	XY_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* Over the size the caller allows. */
	m.error.text = "a longer text than sixteen bytes";
	xy_fd_send_msg(sv[0], XY_MSG_ERROR, &m, 1000, NULL, 0);
	XY_CHECK_EQ(xy_fd_recv_msg(sv[1], XY_MSG_ERROR, &d, 16, 1000, err,
				   sizeof err), -1);
	XY_CHECK(strstr(err, "exceeds"));
	close(sv[0]);
	close(sv[1]);
	/* EOF. */
	XY_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[0]);
	XY_CHECK_EQ(xy_fd_recv_msg(sv[1], XY_MSG_ERROR, &d, 16, 1000, err,
				   sizeof err), -1);
	XY_CHECK(strstr(err, "closed"));
	close(sv[1]);
}

static void t_write_read_all(void)
{
	int sv[2];
	XY_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* More than the socket buffer: write_all must time out, not
	 * block, when nobody reads. */
	size_t n = 8 << 20;
	char *p = calloc(1, n);
	XY_CHECK_EQ(xy_fd_write_all(sv[0], p, n, 200), -1);
	XY_CHECK_EQ(errno, ETIMEDOUT);
	char c;
	XY_CHECK_EQ(xy_fd_read_all(sv[0], &c, 1, 100), -1);
	XY_CHECK_EQ(errno, ETIMEDOUT);
	free(p);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_random),
		XY_TEST(t_mac_layout),
		XY_TEST(t_mac_fails_closed),
		XY_TEST(t_msgmac),
		XY_TEST(t_tokens),
		XY_TEST(t_handshake_ok),
		XY_TEST(t_handshake_wrong_secret),
		XY_TEST(t_client_checks_server_mac),
		XY_TEST(t_client_timeout),
		XY_TEST(t_recv_checks),
		XY_TEST(t_write_read_all),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
