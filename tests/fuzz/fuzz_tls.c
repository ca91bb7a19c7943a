/*
 * fuzz_tls.c: libFuzzer target for the certificate, key and handshake
 * bytes Xylem reads (src/common/tls.c, msgmac.c). The first byte picks
 * the reader; the rest is the input:
 *
 *   0: a manager's TLS directory holding ca.crt and ca.key (the input
 *      cut at its first NUL byte into the two files), read by
 *      xy_tls_manager_ctx, which signs a server certificate with them
 *      when they are a CA and its key;
 *   1: the same with server.crt and server.key and no ca.key (a
 *      certificate of the user's own CA, used as it is);
 *   2: a worker's --tls-ca file (xy_tls_client_ctx);
 *   3: a TLS client's first flight as a transfer server reads it (the
 *      pre-shared key's identity goes to find_psk), over memory BIOs;
 *   4: a TLS server's flight (its certificate chain among it) as a
 *      worker reads it, verifying against a CA and the name
 *      "localhost";
 *   5: the frames and tags of a control connection without TLS, as
 *      conn.c checks them (msgmac.h): no tag of the input may verify
 *      unless it is what the signing side computes.
 *
 * Readers must never read out of bounds, leak or crash; a directory or
 * file that is not what it should be is refused with a reason.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "auth.h"
#include "buf.h"
#include "log.h"
#include "msgmac.h"
#include "proto.h"
#include "tls.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char secret[] = "fuzz-secret-0123456789abcdef";
static char dir[64], ca_dir[64];
static SSL_CTX *psk_server, *verifier;

/* Seeds for modes 3 and 4 (XYLEM_FUZZ_TLS_SEEDS=DIR): the first flight
 * of each side of real handshakes, a transfer client's (with its
 * pre-shared key) and a manager's (with its certificate chain). */
static void seed(const char *out, const char *name, uint8_t mode, BIO *b)
{
	char path[4096];
	const uint8_t *p;
	long n = BIO_get_mem_data(b, (char **)&p);
	snprintf(path, sizeof path, "%s/%s", out, name);
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	fputc(mode, f);
	fwrite(p, 1, (size_t)n, f);
	fclose(f);
}

static void pair_flights(const char *out, SSL_CTX *cctx, SSL_CTX *sctx,
			 int want_server)
{
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	BIO *c2s = BIO_new(BIO_s_mem()), *s2c = BIO_new(BIO_s_mem());
	BIO_up_ref(c2s);
	BIO_up_ref(s2c);
	SSL_set_bio(c, s2c, c2s);
	SSL_set_bio(s, c2s, s2c);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	xy_tls_expect_host(c, "localhost");
	SSL_do_handshake(c);
	if (!want_server) {
		seed(out, "client-hello-psk", 3, c2s);
	} else {
		SSL_do_handshake(s);
		seed(out, "server-flight", 4, s2c);
	}
	SSL_free(c); /* each BIO is held by both ends */
	SSL_free(s);
}

/* Mode 5: three frames, tagged as a client's (see tagged_frames). */
static void tagged_seed(const char *out)
{
	uint8_t ns[XY_NONCE_LEN] = {1}, nc[XY_NONCE_LEN] = {2};
	struct xy_msgmac *mac = xy_msgmac_create(secret, sizeof secret - 1,
						 'c', ns, nc);
	union xy_msg m = {.cancel = {.task_id = 7}};
	struct xy_buf b, all;
	char path[4096];
	xy_buf_init(&all);
	xy_buf_put_u8(&all, 5);
	for (int i = 0; i < 3; i++) {
		uint8_t tag[XY_MSGMAC_TAG];
		xy_buf_init(&b);
		xy_msg_encode(&b, i == 1 ? XY_MSG_KEEPALIVE : XY_MSG_CANCEL,
			      i == 1 ? NULL : &m);
		xy_msgmac_sign(mac, b.data, b.len, tag);
		xy_buf_put_raw(&all, b.data, b.len);
		xy_buf_put_raw(&all, tag, sizeof tag);
		xy_buf_free(&b);
	}
	snprintf(path, sizeof path, "%s/tagged-frames", out);
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	fwrite(all.data, 1, all.len, f);
	fclose(f);
	xy_buf_free(&all);
	xy_msgmac_destroy(mac);
}

static void write_seeds(const char *out)
{
	char err[256];
	SSL_CTX *pc = xy_tls_psk_ctx(0, secret, sizeof secret - 1, err,
				     sizeof err);
	SSL_CTX *m = xy_tls_manager_ctx(ca_dir, "localhost", err, sizeof err);
	if (!pc || !m)
		abort();
	pair_flights(out, pc, psk_server, 0);
	pair_flights(out, verifier, m, 1);
	tagged_seed(out);
	SSL_CTX_free(pc);
	SSL_CTX_free(m);
}

static void remove_dirs(void)
{
	xy_rm_rf(dir);
	xy_rm_rf(ca_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256], ca[128];

	(void)argc;
	(void)argv;
	xy_log_set_level(-1);
	snprintf(dir, sizeof dir, "/tmp/xylem-fuzz-tls-XXXXXX");
	snprintf(ca_dir, sizeof ca_dir, "/tmp/xylem-fuzz-tls-ca-XXXXXX");
	if (!mkdtemp(dir) || !mkdtemp(ca_dir))
		abort();
	atexit(remove_dirs);
	/* A real CA, for the verifying client of mode 4. */
	SSL_CTX *m = xy_tls_manager_ctx(ca_dir, "localhost", err, sizeof err);
	snprintf(ca, sizeof ca, "%s/" XY_TLS_CA_CERT, ca_dir);
	psk_server = xy_tls_psk_ctx(1, secret, sizeof secret - 1, err,
				    sizeof err);
	verifier = xy_tls_client_ctx(ca, err, sizeof err);
	if (!m || !psk_server || !verifier)
		abort();
	SSL_CTX_free(m);
	const char *seeds = getenv("XYLEM_FUZZ_TLS_SEEDS");
	if (seeds && *seeds)
		write_seeds(seeds);
	return 0;
}

static void put(const char *name, const uint8_t *p, size_t n)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	if (n)
		fwrite(p, 1, n, f);
	fclose(f);
}

static void clear(void)
{
	static const char *const names[] = {XY_TLS_CA_CERT, XY_TLS_CA_KEY,
					    XY_TLS_SERVER_CERT,
					    XY_TLS_SERVER_KEY};
	char path[128];
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
}

/* Writes the two files, cut at the first NUL, and reads them as a
 * manager would. */
static void pem_pair(const uint8_t *p, size_t n, const char *cf,
		     const char *kf)
{
	const uint8_t *cut = memchr(p, 0, n);
	size_t a = cut ? (size_t)(cut - p) : n;
	char err[512];

	put(cf, p, a);
	put(kf, cut ? cut + 1 : p, cut ? n - a - 1 : n);
	SSL_CTX *ctx = xy_tls_manager_ctx(dir, "localhost", err, sizeof err);
	SSL_CTX_free(ctx);
	clear();
}

static void ca_file(const uint8_t *p, size_t n)
{
	char path[128], err[512];
	put(XY_TLS_CA_CERT, p, n);
	snprintf(path, sizeof path, "%s/" XY_TLS_CA_CERT, dir);
	SSL_CTX_free(xy_tls_client_ctx(path, err, sizeof err));
	clear();
}

/* Feeds p to one end of a TLS handshake on memory BIOs, and lets it
 * answer; twice, so that a second flight in the input is read too. */
static void handshake(SSL_CTX *ctx, int server, const uint8_t *p, size_t n)
{
	SSL *ssl = SSL_new(ctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	if (!ssl || !rb || !wb) {
		SSL_free(ssl);
		BIO_free(rb);
		BIO_free(wb);
		return;
	}
	SSL_set_bio(ssl, rb, wb);
	if (server) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
		xy_tls_expect_host(ssl, "localhost");
		SSL_do_handshake(ssl); /* its hello, which the input answers */
	}
	size_t half = n / 2;
	BIO_write(rb, p, (int)half);
	SSL_do_handshake(ssl);
	BIO_write(rb, p + half, (int)(n - half));
	if (SSL_do_handshake(ssl) == 1) {
		uint8_t buf[256];
		SSL_read(ssl, buf, sizeof buf);
	}
	SSL_free(ssl);
	ERR_clear_error();
}

/* Frames with tags, as conn.c reads them after the handshake. */
static void tagged_frames(const uint8_t *p, size_t n)
{
	uint8_t ns[XY_NONCE_LEN] = {1}, nc[XY_NONCE_LEN] = {2};
	struct xy_msgmac *in = xy_msgmac_create(secret, sizeof secret - 1, 'c',
						ns, nc);
	struct xy_msgmac *out = xy_msgmac_create(secret, sizeof secret - 1,
						 'c', ns, nc);
	size_t pos = 0;
	if (!in || !out)
		abort();
	while (n - pos >= XY_FRAME_HEADER) {
		uint32_t len;
		uint16_t type;
		if (xy_frame_parse(p + pos, &len, &type) < 0 ||
		    n - pos - XY_FRAME_HEADER < (size_t)len + XY_MSGMAC_TAG)
			break;
		size_t flen = XY_FRAME_HEADER + len;
		uint8_t want[XY_MSGMAC_TAG];
		if (xy_msgmac_sign(out, p + pos, flen, want) < 0)
			abort();
		int ok = xy_msgmac_verify(in, p + pos, flen, p + pos + flen);
		/* Verified exactly when the tag is the signer's. */
		if ((ok == 0) != !memcmp(want, p + pos + flen, sizeof want))
			abort();
		if (ok < 0)
			break; /* conn.c drops the connection here */
		pos += flen + XY_MSGMAC_TAG;
	}
	xy_msgmac_destroy(in);
	xy_msgmac_destroy(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 6) {
	case 0:
		pem_pair(p, n, XY_TLS_CA_CERT, XY_TLS_CA_KEY);
		break;
	case 1:
		pem_pair(p, n, XY_TLS_SERVER_CERT, XY_TLS_SERVER_KEY);
		break;
	case 2:
		ca_file(p, n);
		break;
	case 3:
		handshake(psk_server, 1, p, n);
		break;
	case 4:
		handshake(verifier, 0, p, n);
		break;
	case 5:
		tagged_frames(p, n);
		break;
	}
	return 0;
}
