/*
 * ep_ca.h: the shared endpoint's own certificate authority (ep_ca.c,
 * docs/endpoint.md, "Remote users"). It lives in the endpoint's state
 * directory, root's:
 *
 *   STATE/          0711  root
 *   STATE/tls/      0700  ca.crt, ca.key (0600): made at first start
 *   STATE/issued    0600  NAME SERIAL: each account's current certificate
 *   STATE/revoked   0644  SERIAL NAME: certificates no longer honoured
 *
 * The TLS listener (ep_tls.c) presents a server certificate signed by the
 * CA and asks each client for a certificate signed by it; `xylem endpoint
 * enroll` gets one through the spawner (spawn.c), which signs only the
 * subject it derives from the kernel's word on who asked.
 *
 * Every function returns -1 (or NULL) with a reason in err on failure.
 */
#ifndef XY_CLI_EP_CA_H
#define XY_CLI_EP_CA_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define XY_EP_SERIAL_MAX 64 /* a serial's hex digits, with room */
/* How a refusal of a client's certificate for good begins on the wire
 * ("error " XY_EP_CERT_REFUSED WHY): the client stops trying then
 * (python/xylem/endpoint.py); other refusals may pass later. */
#define XY_EP_CERT_REFUSED "certificate refused for good: "

/* Makes STATE (0711) and its CA if they are not there; checks that STATE
 * is a directory of this process's user that nobody else may write. */
int xy_ep_ca_init(const char *state, char *err, size_t len);

/* The listener's context: TLS 1.3 only, a fresh server certificate for
 * host (and this machine's names), signed by the CA; every client must
 * present a certificate the CA signed (for client use), within its
 * validity. Revocation is the caller's to check after the handshake. */
SSL_CTX *xy_ep_ca_listener_ctx(const char *state, const char *host,
			       char *err, size_t len);

/* Signs the request csr (DER, n bytes) for the account name: the
 * request's own subject is ignored, its signature must hold. The new
 * certificate becomes name's current one (its previous one is revoked).
 * *pem gets the certificate then the CA's, PEM (malloc'd); serial its
 * serial in hex. */
int xy_ep_ca_issue(const char *state, const char *name, const uint8_t *csr,
		   size_t n, int days, char **pem,
		   char serial[XY_EP_SERIAL_MAX], char *err, size_t len);

/* The spawner's own check of a client certificate (DER) that the front
 * passed: signed by the CA, for client use, within its validity, not
 * revoked, and the current certificate of the account its subject names
 * (name, at most namelen - 1 bytes). */
int xy_ep_ca_check(const char *state, const uint8_t *der, size_t n,
		   char *name, size_t namelen, char *err, size_t len);

/* 1 if serial (hex) is in STATE/revoked, 0 if not, -1 if the list cannot
 * be read (the caller refuses then: fail closed). */
int xy_ep_ca_revoked(const char *state, const char *serial);

/* The serial of cert in hex: 0, or -1. */
int xy_ep_ca_serial(X509 *cert, char serial[XY_EP_SERIAL_MAX]);

/* Revokes what: an account's current certificate (a name in issued) or
 * a serial; says which serial in serial. */
int xy_ep_ca_revoke(const char *state, const char *what,
		    char serial[XY_EP_SERIAL_MAX], char *err, size_t len);

/* The state directory when none is named: /var/lib/xylem/endpoint for
 * root, ~/.xylem/endpoint-ca for a personal endpoint. Returns buf. */
const char *xy_ep_ca_default_state(char *buf, size_t len);

#endif
