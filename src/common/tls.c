/*
 * tls.c: certificates, contexts and checks for TLS 1.3 (tls.h). conn.c
 * drives TLS on libuv streams through memory BIOs; xfer.c on blocking
 * sockets. Keys are ECDSA P-256; certificates are signed with SHA-256.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "auth.h"
#include "util.h"

#define CA_DAYS 3650
#define SERVER_DAYS 825
#define SAN_MAX 4096
#define BINDING_LABEL "EXPORTER-xylem-channel-binding"

const char *xy_tls_error(SSL *ssl, char *buf, size_t len)
{
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	unsigned long e = ERR_peek_last_error();

	if (v != X509_V_OK)
		snprintf(buf, len, "certificate verify failed: %s",
			 X509_verify_cert_error_string(v));
	else if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "TLS error");
	ERR_clear_error();
	return buf;
}

static int fail_ssl(char *err, size_t errlen, const char *what)
{
	char why[256];
	xy_tls_error(NULL, why, sizeof why);
	return xy_fail(err, errlen, EPROTO, "%s: %s", what, why);
}

int xy_tls_looks_tls(const uint8_t *p, size_t n)
{
	/* A record: content type 22 (handshake) or 21 (alert), then
	 * version 3.x. */
	return n >= 1 && (p[0] == 22 || p[0] == 21) && (n < 2 || p[1] == 3);
}

/* ------------------------------------------------------- certificates */

static EVP_PKEY *new_key(void)
{
	return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ex)
		return -1;
	int rc = X509_add_ext(cert, ex, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ex);
	return rc;
}

/* A certificate for key named cn, signed by issuer (NULL: itself). */
static X509 *new_cert(EVP_PKEY *key, const char *cn, long days, int ca,
		      const char *san, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *c = X509_new();
	uint8_t serial[16];
	BIGNUM *bn = NULL;
	if (!c || RAND_bytes(serial, sizeof serial) != 1)
		goto error;
	serial[0] &= 0x7f;
	if (!(bn = BN_bin2bn(serial, sizeof serial, NULL)) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)))
		goto error;
	X509_NAME *name = X509_get_subject_name(c);
	if (X509_set_version(c, 2) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(c), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(c), days * 86400L) ||
	    X509_set_pubkey(c, key) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
				       (const unsigned char *)"xylem", -1, -1,
				       0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				       (const unsigned char *)cn, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer)
					   : name) != 1)
		goto error;
	X509 *iss = issuer ? issuer : c;
	if (add_ext(c, iss, NID_basic_constraints,
		    ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE") < 0 ||
	    add_ext(c, iss, NID_key_usage,
		    ca ? "critical,keyCertSign,cRLSign"
		       : "critical,digitalSignature") < 0 ||
	    add_ext(c, iss, NID_subject_key_identifier, "hash") < 0 ||
	    (issuer && add_ext(c, iss, NID_authority_key_identifier,
			       "keyid:always") < 0) ||
	    (!ca && add_ext(c, iss, NID_ext_key_usage, "serverAuth") < 0) ||
	    (san && add_ext(c, iss, NID_subject_alt_name, san) < 0))
		goto error;
	if (!X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()))
		goto error;
	BN_free(bn);
	return c;
error:
	BN_free(bn);
	X509_free(c);
	return NULL;
}

/* Opens path for writing, 0600; fails if it exists. */
static FILE *open_private(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
	if (fd >= 0 && !f)
		close(fd);
	return f;
}

static int write_pem(const char *dir, const char *file, X509 *cert,
		     EVP_PKEY *key, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	FILE *f = open_private(path);
	if (!f)
		return xy_fail(err, errlen, errno, "cannot create %s: %s",
			       path, strerror(errno));
	int ok = cert ? PEM_write_X509(f, cert)
		      : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	if (fclose(f) != 0 || !ok)
		return xy_fail(err, errlen, EIO, "cannot write %s", path);
	return 0;
}

static int read_pair(const char *dir, const char *cf, const char *kf,
		     X509 **cert, EVP_PKEY **key)
{
	char path[4096];
	FILE *f;
	snprintf(path, sizeof path, "%s/%s", dir, cf);
	if ((f = fopen(path, "r"))) {
		*cert = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	snprintf(path, sizeof path, "%s/%s", dir, kf);
	if ((f = fopen(path, "r"))) {
		*key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	return *cert && *key ? 0 : -1;
}

static int exists(const char *dir, const char *file)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	return access(path, F_OK) == 0;
}

static void san_add(char *san, const char *kind, const char *v)
{
	size_t n = strlen(san);
	char item[300];
	if (!v || !*v || strchr(v, ',') || strlen(v) > 255)
		return;
	snprintf(item, sizeof item, "%s:%s", kind, v);
	if (strstr(san, item))
		return;
	snprintf(san + n, SAN_MAX - n, "%s%s", n ? "," : "", item);
}

static void san_add_host(char *san, const char *host)
{
	struct in6_addr a;
	if (!host || !*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
		return;
	if (inet_pton(AF_INET, host, &a) == 1 ||
	    inet_pton(AF_INET6, host, &a) == 1)
		san_add(san, "IP", host);
	else
		san_add(san, "DNS", host);
}

/* The names and addresses a worker may use to reach this host. */
static void host_names(char *san, const char *host)
{
	char name[256] = "";
	struct ifaddrs *ifs = NULL;

	san_add(san, "DNS", "localhost");
	san_add(san, "IP", "127.0.0.1");
	san_add(san, "IP", "::1");
	san_add_host(san, host);
	if (gethostname(name, sizeof name - 1) == 0) {
		san_add_host(san, name);
		struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *ai = NULL;
		if (getaddrinfo(name, NULL, &hints, &ai) == 0 && ai &&
		    ai->ai_canonname)
			san_add_host(san, ai->ai_canonname);
		freeaddrinfo(ai);
	}
	if (getifaddrs(&ifs) == 0) {
		for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
			char ip[INET6_ADDRSTRLEN];
			if (!i->ifa_addr)
				continue;
			int fam = i->ifa_addr->sa_family;
			const void *a =
				fam == AF_INET
					? (const void *)&((struct sockaddr_in *)
								  i->ifa_addr)
						  ->sin_addr
				: fam == AF_INET6
					? (const void *)&((struct sockaddr_in6 *)
								  i->ifa_addr)
						  ->sin6_addr
					: NULL;
			if (a && inet_ntop(fam, a, ip, sizeof ip) &&
			    strncmp(ip, "fe80", 4) != 0)
				san_add(san, "IP", ip);
		}
		freeifaddrs(ifs);
	}
}

/* ---------------------------------------------------------- contexts */

static SSL_CTX *new_ctx(int server)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method()
					  : TLS_client_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* No tickets: no session is ever resumed, and none of the records
	 * that carry them come after the handshake. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	return ctx;
}

SSL_CTX *xy_tls_server_ctx(const char *cert, const char *key, char *err,
			   size_t errlen)
{
	SSL_CTX *ctx = new_ctx(1);
	if (!ctx) {
		fail_ssl(err, errlen, "cannot make a TLS context");
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		fail_ssl(err, errlen, cert);
		goto error;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		fail_ssl(err, errlen, key);
		goto error;
	}
	return ctx;
error:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *xy_tls_client_ctx(const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = new_ctx(0);
	if (!ctx) {
		fail_ssl(err, errlen, "cannot make a TLS context");
		return NULL;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		char what[4200];
		snprintf(what, sizeof what, "cannot load the CA file %s",
			 ca_file);
		fail_ssl(err, errlen, what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

int xy_tls_expect_host(SSL *ssl, const char *host)
{
	struct in6_addr a;
	if (inet_pton(AF_INET, host, &a) == 1 ||
	    inet_pton(AF_INET6, host, &a) == 1) {
		X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
		return X509_VERIFY_PARAM_set1_ip_asc(p, host) == 1 ? 0 : -1;
	}
	if (SSL_set_tlsext_host_name(ssl, host) != 1)
		return -1;
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

static int cert_fp(X509 *c, uint8_t fp[XY_TLS_FP_LEN])
{
	unsigned n = XY_TLS_FP_LEN;
	return X509_digest(c, EVP_sha256(), fp, &n) == 1 &&
			       n == XY_TLS_FP_LEN
		       ? 0
		       : -1;
}

SSL_CTX *xy_tls_self(uint8_t fp[XY_TLS_FP_LEN], char *err, size_t errlen)
{
	EVP_PKEY *key = new_key();
	X509 *c = key ? new_cert(key, "xylem transfers", SERVER_DAYS, 0, NULL,
				 NULL, NULL)
		      : NULL;
	SSL_CTX *ctx = c ? new_ctx(1) : NULL;
	if (!ctx || SSL_CTX_use_certificate(ctx, c) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1 || cert_fp(c, fp) < 0) {
		fail_ssl(err, errlen, "cannot make a transfer certificate");
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	X509_free(c);
	EVP_PKEY_free(key);
	return ctx;
}

SSL_CTX *xy_tls_pin_ctx(char *err, size_t errlen)
{
	SSL_CTX *ctx = new_ctx(0);
	if (!ctx)
		fail_ssl(err, errlen, "cannot make a TLS context");
	return ctx;
}

int xy_tls_peer_fp(SSL *ssl, uint8_t fp[XY_TLS_FP_LEN])
{
	X509 *c = SSL_get1_peer_certificate(ssl);
	int rc = c ? cert_fp(c, fp) : -1;
	X509_free(c);
	return rc;
}

int xy_tls_binding(SSL *ssl, uint8_t out[XY_TLS_BINDING_LEN])
{
	return SSL_export_keying_material(ssl, out, XY_TLS_BINDING_LEN,
					  BINDING_LABEL,
					  sizeof BINDING_LABEL - 1, NULL, 0,
					  0) == 1
		       ? 0
		       : -1;
}

/* Reads the CA in dir, or makes one there. Two managers starting at once
 * on one empty directory: one makes it (O_EXCL), the other reads it. */
static int load_ca(const char *dir, X509 **ca, EVP_PKEY **ca_key, char *err,
		   size_t errlen)
{
	for (int i = 0; i < 50 && !exists(dir, XY_TLS_CA_CERT) &&
			exists(dir, XY_TLS_CA_KEY);
	     i++)
		usleep(20000); /* another is writing it */
	if (exists(dir, XY_TLS_CA_KEY)) {
		if (read_pair(dir, XY_TLS_CA_CERT, XY_TLS_CA_KEY, ca, ca_key) <
		    0)
			return fail_ssl(err, errlen,
					"cannot read the CA (ca.crt, ca.key)");
		return 0;
	}
	if (!(*ca_key = new_key()) ||
	    !(*ca = new_cert(*ca_key, "xylem manager CA", CA_DAYS, 1, NULL,
			     NULL, NULL)))
		return fail_ssl(err, errlen, "cannot make a CA");
	if (write_pem(dir, XY_TLS_CA_KEY, NULL, *ca_key, err, errlen) < 0 ||
	    write_pem(dir, XY_TLS_CA_CERT, *ca, NULL, err, errlen) < 0)
		return -1;
	return 0;
}

SSL_CTX *xy_tls_manager_ctx(const char *dir, const char *host, char *err,
			    size_t errlen)
{
	X509 *ca = NULL, *srv = NULL;
	EVP_PKEY *ca_key = NULL, *srv_key = NULL;
	SSL_CTX *ctx = NULL;
	char *san = NULL;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		xy_fail(err, errlen, errno, "cannot create %s: %s", dir,
			strerror(errno));
		return NULL;
	}
	if (!exists(dir, XY_TLS_CA_KEY) && exists(dir, XY_TLS_SERVER_CERT) &&
	    exists(dir, XY_TLS_SERVER_KEY)) {
		/* The user's own certificate, from a CA of theirs. */
		char cert[4200], key[4200];
		snprintf(cert, sizeof cert, "%s/" XY_TLS_SERVER_CERT, dir);
		snprintf(key, sizeof key, "%s/" XY_TLS_SERVER_KEY, dir);
		return xy_tls_server_ctx(cert, key, err, errlen);
	}
	if (load_ca(dir, &ca, &ca_key, err, errlen) < 0)
		goto done;
	if (!(san = calloc(1, SAN_MAX))) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		goto done;
	}
	host_names(san, host);
	if (!(srv_key = new_key()) ||
	    !(srv = new_cert(srv_key, "xylem manager", SERVER_DAYS, 0, san, ca,
			     ca_key))) {
		fail_ssl(err, errlen, "cannot make the server certificate");
		goto done;
	}
	if (!(ctx = new_ctx(1)) || SSL_CTX_use_certificate(ctx, srv) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, srv_key) != 1) {
		fail_ssl(err, errlen, "cannot make a TLS context");
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
done:
	free(san);
	X509_free(ca);
	X509_free(srv);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	return ctx;
}

/* ------------------------------------------------------------ transfers */

#define PSK_ID "xylem-transfer"
#define BRIDGE_BUF (256 * 1024)

static int key_index = -1;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
		     long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (ptr)
		OPENSSL_clear_free(ptr, XY_MAC_LEN);
}

static void key_index_make(void)
{
	key_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, key_free);
}

/* The PSK as a resumable session: TLS_AES_128_GCM_SHA256's hash. */
static SSL_SESSION *psk_session(SSL *ssl)
{
	static const unsigned char aes128gcm[] = {0x13, 0x01};
	const uint8_t *key = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
						 key_index);
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcm);
	SSL_SESSION *s = key && cipher ? SSL_SESSION_new() : NULL;
	if (s && SSL_SESSION_set1_master_key(s, key, XY_MAC_LEN) == 1 &&
	    SSL_SESSION_set_cipher(s, cipher) == 1 &&
	    SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) == 1)
		return s;
	SSL_SESSION_free(s);
	return NULL;
}

static int use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id,
		   size_t *idlen, SSL_SESSION **sess)
{
	SSL_SESSION *s = psk_session(ssl);
	if (!s)
		return 0;
	if (md && SSL_CIPHER_get_handshake_digest(
			  SSL_SESSION_get0_cipher(s)) != md) {
		SSL_SESSION_free(s); /* a retry for another hash: none */
		*sess = NULL;
		*id = NULL;
		*idlen = 0;
		return 1;
	}
	*sess = s;
	*id = (const unsigned char *)PSK_ID;
	*idlen = sizeof PSK_ID - 1;
	return 1;
}

static int find_psk(SSL *ssl, const unsigned char *id, size_t idlen,
		    SSL_SESSION **sess)
{
	*sess = NULL;
	if (idlen != sizeof PSK_ID - 1 || memcmp(id, PSK_ID, idlen) != 0)
		return 1; /* unknown: the handshake fails (no certificate) */
	*sess = psk_session(ssl);
	return *sess ? 1 : 0;
}

SSL_CTX *xy_tls_psk_ctx(int server, const void *secret, size_t secret_len,
			char *err, size_t errlen)
{
	/* A label of exactly 32 bytes, the length of a binding. */
	static const char label[] = "xylem transfer pre-shared key v1";
	uint8_t *key = OPENSSL_malloc(XY_MAC_LEN);
	SSL_CTX *ctx = key ? new_ctx(server) : NULL;

	pthread_once(&key_once, key_index_make);
	if (!ctx || key_index < 0 ||
	    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1) {
		OPENSSL_free(key);
		SSL_CTX_free(ctx);
		fail_ssl(err, errlen, "cannot make a transfer TLS context");
		return NULL;
	}
	_Static_assert(sizeof label - 1 == 32, "a binding's length");
	xy_auth_bind_key(secret, secret_len, (const uint8_t *)label, key);
	SSL_CTX_set_ex_data(ctx, key_index, key);
	if (server)
		SSL_CTX_set_psk_find_session_callback(ctx, find_psk);
	else
		SSL_CTX_set_psk_use_session_callback(ctx, use_psk);
	return ctx;
}

struct xy_tls_bridge {
	int net;
	int app[2]; /* [0] the caller's, [1] the thread's */
	SSL *ssl;
	int server, timeout_ms;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state; /* 0 handshaking, 1 relaying, -1 failed */
	char why[256];
};

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void bridge_set(struct xy_tls_bridge *b, int state)
{
	pthread_mutex_lock(&b->mu);
	b->state = state;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

/* Relays until either side ends: 0 if the plain side ended (all of it
 * sent), -1 on a failure. */
static int relay(struct xy_tls_bridge *b, uint8_t *buf)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = b->net, .events = POLLIN},
				      {.fd = b->app[1], .events = POLLIN}};
		if (!SSL_pending(b->ssl) && poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (SSL_pending(b->ssl) || p[0].revents) {
			int n = SSL_read(b->ssl, buf, BRIDGE_BUF);
			if (n <= 0 || send_all(b->app[1], buf, (size_t)n) < 0)
				return -1;
		}
		if (p[1].revents) {
			ssize_t n = read(b->app[1], buf, BRIDGE_BUF);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0)
				return 0;
			if (n < 0 || SSL_write(b->ssl, buf, (int)n) != n)
				return -1;
		}
	}
}

static void *bridge_main(void *arg)
{
	struct xy_tls_bridge *b = arg;
	struct timeval tv = {b->timeout_ms / 1000,
			     (b->timeout_ms % 1000) * 1000};
	setsockopt(b->net, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(b->net, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int r = b->server ? SSL_accept(b->ssl) : SSL_connect(b->ssl);
	if (r != 1) {
		char why[200];
		snprintf(b->why, sizeof b->why, "TLS handshake failed: %s",
			 xy_tls_error(b->ssl, why, sizeof why));
		shutdown(b->net, SHUT_RDWR);
		bridge_set(b, -1);
		return NULL;
	}
	bridge_set(b, 1);
	uint8_t *buf = malloc(BRIDGE_BUF);
	if (buf && relay(b, buf) == 0) {
		SSL_shutdown(b->ssl); /* close_notify: the stream ended */
		shutdown(b->net, SHUT_WR);
	} else {
		shutdown(b->net, SHUT_RDWR);
	}
	ERR_clear_error();
	free(buf);
	/* The caller sees the end: EOF, or EPIPE on its next write. */
	shutdown(b->app[1], SHUT_RDWR);
	return NULL;
}

struct xy_tls_bridge *xy_tls_bridge_start(int net, SSL_CTX *ctx, int server,
					  int timeout_ms, char *err,
					  size_t errlen)
{
	struct xy_tls_bridge *b = calloc(1, sizeof *b);
	sigset_t all, old;
	if (!b) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	b->net = net;
	b->server = server;
	b->timeout_ms = timeout_ms;
	b->app[0] = b->app[1] = -1;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b->app) < 0 ||
	    !(b->ssl = SSL_new(ctx)) || SSL_set_fd(b->ssl, net) != 1) {
		xy_fail(err, errlen, errno ? errno : ENOMEM,
			"cannot start TLS: %s", strerror(errno ? errno : ENOMEM));
		goto error;
	}
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	setsockopt(b->app[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&b->th, NULL, bridge_main, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		xy_fail(err, errlen, rc, "cannot start a thread");
		goto error;
	}
	pthread_mutex_lock(&b->mu);
	while (b->state == 0)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
	if (b->state < 0) {
		pthread_join(b->th, NULL);
		xy_fail(err, errlen, ECONNREFUSED, "%s", b->why);
		b->th = 0;
		goto error_joined;
	}
	return b;
error:
	b->th = 0;
error_joined:
	SSL_free(b->ssl);
	if (b->app[0] >= 0)
		close(b->app[0]);
	if (b->app[1] >= 0)
		close(b->app[1]);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
	return NULL;
}

int xy_tls_bridge_fd(const struct xy_tls_bridge *b)
{
	return b->app[0];
}

void xy_tls_bridge_end(struct xy_tls_bridge *b)
{
	if (!b)
		return;
	/* What the caller wrote is still relayed (then EOF); what the
	 * thread would still hand the caller fails, so that a thread blocked
	 * on a caller that stopped reading (a fetch that failed) ends. */
	shutdown(b->app[0], SHUT_RDWR);
	pthread_join(b->th, NULL);
	close(b->app[0]);
	close(b->app[1]);
	SSL_free(b->ssl);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
}
