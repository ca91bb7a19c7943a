/*
 * tls_records.c: what one control message costs in CPU on each side,
 * with TLS (SSL_write, the record's trip through memory BIOs as conn.c
 * does it, SSL_read), with the message MAC of a connection without TLS
 * (msgmac.h), and with neither (a copy). A ping-pong of N messages of
 * B bytes between two ends in one thread, so no syscall and no wait
 * counts: the figure is the crypto and the buffer handling alone.
 * TLS runs twice: with SSL_MODE_RELEASE_BUFFERS (as the manager's
 * conns: an idle conn holds no record buffers) and without.
 *
 *     bench_tls_records [N [B]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "msgmac.h"
#include "tls.h"
#include "util.h"

static double now_us(void)
{
	return (double)xy_mono_us();
}

struct end {
	SSL *ssl;
	BIO *in, *out; /* in: what it reads; out: what it writes */
};

/* Moves what a wrote to b's input, as a stream would. */
static void carry(struct end *a, struct end *b)
{
	char buf[65536];
	int n;
	while ((n = BIO_read(a->out, buf, sizeof buf)) > 0)
		BIO_write(b->in, buf, n);
}

static void pair(SSL_CTX *cctx, SSL_CTX *sctx, struct end *c, struct end *s,
		 int release)
{
	c->ssl = SSL_new(cctx);
	s->ssl = SSL_new(sctx);
	c->in = BIO_new(BIO_s_mem());
	c->out = BIO_new(BIO_s_mem());
	s->in = BIO_new(BIO_s_mem());
	s->out = BIO_new(BIO_s_mem());
	SSL_set_bio(c->ssl, c->in, c->out);
	SSL_set_bio(s->ssl, s->in, s->out);
	if (release) {
		SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
		SSL_set_mode(s->ssl, SSL_MODE_RELEASE_BUFFERS);
	}
	SSL_set_connect_state(c->ssl);
	SSL_set_accept_state(s->ssl);
	xy_tls_expect_host(c->ssl, "localhost");
	for (int i = 0; i < 10; i++) {
		SSL_do_handshake(c->ssl);
		carry(c, s);
		SSL_do_handshake(s->ssl);
		carry(s, c);
	}
	if (!SSL_is_init_finished(c->ssl) || !SSL_is_init_finished(s->ssl)) {
		fprintf(stderr, "handshake failed\n");
		exit(1);
	}
}

static void one_way(struct end *a, struct end *b, uint8_t *msg, size_t len,
		    uint8_t *buf)
{
	if (SSL_write(a->ssl, msg, (int)len) != (int)len)
		exit(1);
	carry(a, b);
	size_t got = 0;
	while (got < len) {
		int r = SSL_read(b->ssl, buf + got, (int)(len - got));
		if (r <= 0)
			exit(1);
		got += (size_t)r;
	}
}

static double tls_run(SSL_CTX *cctx, SSL_CTX *sctx, int release, long n,
		      size_t len)
{
	struct end c, s;
	uint8_t *msg = calloc(1, len), *buf = malloc(len);
	pair(cctx, sctx, &c, &s, release);
	double t0 = now_us();
	for (long i = 0; i < n; i++) {
		one_way(&s, &c, msg, len, buf); /* TASK */
		one_way(&c, &s, msg, len, buf); /* TASK_DONE */
	}
	double dt = now_us() - t0;
	SSL_free(c.ssl);
	SSL_free(s.ssl);
	free(msg);
	free(buf);
	return dt / (2.0 * n);
}

static double mac_run(long n, size_t len)
{
	uint8_t ns[32] = {1}, nc[32] = {2}, tag[XY_MSGMAC_TAG];
	struct xy_msgmac *a = xy_msgmac_create("s", 1, 's', ns, nc);
	struct xy_msgmac *b = xy_msgmac_create("s", 1, 's', ns, nc);
	uint8_t *msg = calloc(1, len), *buf = malloc(len);
	double t0 = now_us();
	for (long i = 0; i < 2 * n; i++) {
		xy_msgmac_sign(a, msg, len, tag);
		memcpy(buf, msg, len);
		if (xy_msgmac_verify(b, buf, len, tag) < 0)
			exit(1);
	}
	double dt = now_us() - t0;
	xy_msgmac_destroy(a);
	xy_msgmac_destroy(b);
	free(msg);
	free(buf);
	return dt / (2.0 * n);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	size_t len = argc > 2 ? (size_t)atol(argv[2]) : 300;
	char dir[] = "/tmp/xylem-bench-tls-XXXXXX", ca[64], err[256];
	if (!mkdtemp(dir))
		return 1;
	SSL_CTX *sctx = xy_tls_manager_ctx(dir, "localhost", err, sizeof err);
	snprintf(ca, sizeof ca, "%s/ca.crt", dir);
	SSL_CTX *cctx = xy_tls_client_ctx(ca, err, sizeof err);
	if (!sctx || !cctx) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("%ld round trips of %zu-byte messages, us per message (one "
	       "side sends, the other reads):\n", n, len);
	printf("  TLS, release buffers (manager): %6.2f\n",
	       tls_run(cctx, sctx, 1, n, len));
	printf("  TLS, keep buffers:              %6.2f\n",
	       tls_run(cctx, sctx, 0, n, len));
	printf("  MAC without TLS (--no-tls):     %6.2f\n", mac_run(n, len));
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	xy_rm_rf(dir);
	return 0;
}
