/*
 * auth.h: the HMAC challenge and response that opens every connection.
 *
 *   server -> client  CHALLENGE  magic, version, nonce_s
 *   client -> server  AUTH       version, role, nonce_c,
 *                                mac_c = HMAC(secret, "xylem-c" role nonce_s nonce_c)
 *   server -> client  AUTH_OK    mac_s = HMAC(secret, "xylem-s" role nonce_c nonce_s)
 *
 * Both sides prove the secret, so a worker never runs commands for a
 * manager that does not know it. A wrong MAC or version closes the
 * connection after an ERROR message. conn.c runs this exchange on libuv
 * streams; the blocking functions here run it on plain sockets (xfer.c).
 */
#ifndef XY_AUTH_H
#define XY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* Fills n bytes from the system's random source. Returns -1 on failure. */
int xy_random(void *out, size_t n);

/* The MACs above. which is 'c' or 's'; a and b are the nonces in the order
 * shown for that side. */
void xy_auth_mac(const void *secret, size_t secret_len, char which,
		 uint8_t role, const uint8_t a[XY_NONCE_LEN],
		 const uint8_t b[XY_NONCE_LEN], uint8_t out[XY_MAC_LEN]);

/* The key the MACs above use inside a TLS channel: HMAC(secret,
 * "xylem-b" binding), binding being the channel's exporter value
 * (tls.h, xy_tls_binding). A proof made on one TLS connection is
 * worthless on another, so a relay cannot forward it. */
void xy_auth_bind_key(const void *secret, size_t secret_len,
		      const uint8_t binding[32], uint8_t out[XY_MAC_LEN]);

/* The key of one direction's message MACs on a connection without TLS
 * (msgmac.h): HMAC(secret, "xylem-m" dir nonce_s nonce_c), dir 's' for
 * server to client, 'c' for client to server. */
void xy_auth_msg_key(const void *secret, size_t secret_len, char dir,
		     const uint8_t nonce_s[XY_NONCE_LEN],
		     const uint8_t nonce_c[XY_NONCE_LEN],
		     uint8_t out[XY_MAC_LEN]);

/* Constant-time comparison; 0 if equal. */
int xy_auth_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* Transfer tokens: expiry (u64 microseconds since the epoch,
 * little-endian) followed by HMAC(secret, "xylem-t" id expiry name): a
 * token lets the receiver called name get object id until expiry. An
 * issuer makes each expiry unique (it never issues the same one twice),
 * so that a server can tell a token's second use from another token. */
void xy_token_make(const void *secret, size_t secret_len,
		   const uint8_t id[XY_ID_LEN], uint64_t expiry_us,
		   const char *name, uint8_t out[XY_TOKEN_LEN]);
/* How long a token that xy_token_issue makes lasts. */
#define XY_TOKEN_TTL_US (3600ull * 1000000ull)
/* Makes a token for name to get id, lasting XY_TOKEN_TTL_US from now,
 * with an expiry later than *last (the issuer's previous one, which it
 * keeps there), so that the issuer never issues one expiry twice. */
void xy_token_issue(const void *secret, size_t secret_len, uint64_t *last,
		    const uint8_t id[XY_ID_LEN], const char *name,
		    uint8_t out[XY_TOKEN_LEN]);
/* 0 if the token is genuine for id and name and not expired at now_us;
 * else -1 with errno EACCES (forged, or for another object or receiver)
 * or ETIMEDOUT (expired). */
int xy_token_check(const void *secret, size_t secret_len,
		   const uint8_t id[XY_ID_LEN], const char *name,
		   const uint8_t tok[XY_TOKEN_LEN], uint64_t now_us);
/* A token's expiry. */
uint64_t xy_token_expiry(const uint8_t tok[XY_TOKEN_LEN]);

/* Blocking handshakes on a connected socket, each bounded by timeout_ms.
 * Return 0, or -1 with a reason in err. The server variant stores the
 * client's role. */
int xy_auth_client_fd(int fd, const void *secret, size_t secret_len,
		      uint8_t role, int timeout_ms, char *err, size_t errlen);
/* The client's handshake that also gives the two nonces (NULL: not
 * wanted), for a peer that then tags its frames (msgmac.h). */
int xy_auth_client_fd_nonces(int fd, const void *secret, size_t secret_len,
			     uint8_t role, int timeout_ms,
			     uint8_t nonce_s[XY_NONCE_LEN],
			     uint8_t nonce_c[XY_NONCE_LEN], char *err,
			     size_t errlen);
int xy_auth_server_fd(int fd, const void *secret, size_t secret_len,
		      uint8_t *role, int timeout_ms, char *err, size_t errlen);

/* Blocking frame I/O with a deadline, for transfer connections. Send
 * encodes and writes one message; recv reads one frame of at most max
 * payload bytes and decodes it (the type must be `expect`). Return -1 with
 * a reason in err on timeout, EOF, or a bad frame. */
int xy_fd_send_msg(int fd, unsigned type, const union xy_msg *m,
		   int timeout_ms, char *err, size_t errlen);
int xy_fd_recv_msg(int fd, unsigned expect, union xy_msg *m, uint32_t max,
		   int timeout_ms, char *err, size_t errlen);
/* Writes or reads exactly n bytes, with a deadline per call. */
int xy_fd_write_all(int fd, const void *p, size_t n, int timeout_ms);
int xy_fd_read_all(int fd, void *p, size_t n, int timeout_ms);

#endif
