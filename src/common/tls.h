/*
 * tls.h: TLS 1.3 with OpenSSL for every channel (docs/security.md).
 *
 * A manager keeps a small CA in a directory (ca.crt, ca.key) and makes
 * a server certificate signed by it at each start, in memory, for its
 * host names and addresses; workers and clients
 * verify it against ca.crt, name or address included. Workers and
 * clients prove the shared secret inside the TLS channel, bound to it
 * by an exporter value (xy_tls_binding): a relay that ends TLS on both
 * sides sees two different values, so a proof it forwards fails.
 *
 * Transfer servers present a self-signed certificate made at start
 * (xy_tls_self), whose SHA-256 fingerprint the manager passes on; a
 * fetcher pins the serving host's certificate to that fingerprint.
 *
 * Every function returns -1 or NULL with a reason in err on failure.
 */
#ifndef XY_TLS_H
#define XY_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define XY_TLS_FP_LEN 32      /* SHA-256 of a certificate's DER */
#define XY_TLS_BINDING_LEN 32 /* exporter bytes bound into the MACs */

/* The files of a manager's TLS directory. */
#define XY_TLS_CA_CERT "ca.crt"
#define XY_TLS_CA_KEY "ca.key"
#define XY_TLS_SERVER_CERT "server.crt"
#define XY_TLS_SERVER_KEY "server.key"

/* A manager's server context from dir (made 0700 if absent): a CA
 * (ca.crt, ca.key, made 0600 if absent, kept if present) and a fresh
 * server certificate signed by it, in memory only, for this host's names
 * and addresses and for host (an extra name or address; may be NULL). If
 * dir has server.crt and server.key but no ca.key, they are the user's
 * own and are used as they are. */
SSL_CTX *xy_tls_manager_ctx(const char *dir, const char *host, char *err,
			    size_t errlen);

/* A server context (TLS 1.3 only) with cert and key (PEM files). */
SSL_CTX *xy_tls_server_ctx(const char *cert, const char *key, char *err,
			   size_t errlen);
/* A client context (TLS 1.3 only) that verifies its server against the
 * CA certificates in ca_file. */
SSL_CTX *xy_tls_client_ctx(const char *ca_file, char *err, size_t errlen);
/* Makes ssl check that its peer's certificate is for host (a name or a
 * literal address). */
int xy_tls_expect_host(SSL *ssl, const char *host);

/* A server context with a fresh key and self-signed certificate, made
 * in memory, whose fingerprint goes to fp. */
SSL_CTX *xy_tls_self(uint8_t fp[XY_TLS_FP_LEN], char *err, size_t errlen);
/* A client context that checks no CA: a pinning client checks the peer's
 * fingerprint itself (xy_tls_peer_fp) after the handshake. */
SSL_CTX *xy_tls_pin_ctx(char *err, size_t errlen);
/* The SHA-256 fingerprint of ssl's peer certificate: 0 or -1. */
int xy_tls_peer_fp(SSL *ssl, uint8_t fp[XY_TLS_FP_LEN]);

/* The channel binding of an established connection: 0 or -1. */
int xy_tls_binding(SSL *ssl, uint8_t out[XY_TLS_BINDING_LEN]);

/* The text of OpenSSL's last error (or of ssl's verification failure)
 * into buf, and clears the error queue. Returns buf. */
const char *xy_tls_error(SSL *ssl, char *buf, size_t len);

/* 1 if the first bytes a peer sent (n >= 1) open a TLS record (a
 * handshake or an alert), 0 if not. */
int xy_tls_looks_tls(const uint8_t *p, size_t n);

#endif

/* ------------------------------------------------------------ transfers
 *
 * Transfer connections (xfer.c) run TLS 1.3 with an external pre-shared
 * key derived from the shared secret, with (EC)DHE for forward secrecy:
 * only a host that knows the secret completes the handshake, either way.
 * They run on blocking sockets through a bridge: a thread of its own
 * speaks TLS on the socket, and the caller reads and writes plain bytes
 * (and sendfile) on one end of a socket pair.
 */

/* A TLS 1.3 context keyed by the secret: server or client side. */
SSL_CTX *xy_tls_psk_ctx(int server, const void *secret, size_t secret_len,
			char *err, size_t errlen);

struct xy_tls_bridge;

/* Runs the handshake on the connected socket net within timeout_ms, in
 * the bridge's own thread (every signal blocked there), then relays.
 * NULL with a reason in err if the handshake failed. net stays the
 * caller's: it closes it after xy_tls_bridge_end. */
struct xy_tls_bridge *xy_tls_bridge_start(int net, SSL_CTX *ctx, int server,
					  int timeout_ms, char *err,
					  size_t errlen);
/* The plain end: read and write it as the socket. */
int xy_tls_bridge_fd(const struct xy_tls_bridge *b);
/* Ends the plain side (what was written still goes out, then
 * close_notify; what was not read is dropped), joins the thread and
 * frees b. end(NULL) does nothing. */
void xy_tls_bridge_end(struct xy_tls_bridge *b);
