/*
 * msgmac.h: the MAC that authenticates each message of a control
 * connection that runs without TLS (--no-tls). Pairs with conn.c, which
 * appends a tag to every frame it sends after the handshake of auth.h
 * and checks the tag of every frame it reads.
 *
 * Each direction has its own key, HMAC(secret, "xylem-m" dir nonce_s
 * nonce_c), so a key is worth nothing outside the one connection whose
 * handshake chose the nonces, and a frame cannot be reflected back to
 * its sender. The tag is GMAC: the 16-byte tag of AES-256-GCM under that
 * key, with nonce 0x00000000 || seq (u64, little-endian), no plaintext,
 * and the frame (header and payload) as associated data. seq is the
 * count of frames sent before it in that direction, never on the wire:
 * a frame changed, dropped, replayed or moved fails its tag.
 *
 * Inside TLS, records are authenticated and ordered already, and conn.c
 * adds no tag.
 */
#ifndef XY_MSGMAC_H
#define XY_MSGMAC_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define XY_MSGMAC_TAG 16 /* bytes after each frame */

struct xy_msgmac;

/* A MAC for one direction: dir is 's' (server to client) or 'c' (client
 * to server). Returns NULL on failure (no memory, an OpenSSL error). */
struct xy_msgmac *xy_msgmac_create(const void *secret, size_t secret_len,
				   char dir, const uint8_t nonce_s[XY_NONCE_LEN],
				   const uint8_t nonce_c[XY_NONCE_LEN]);
void xy_msgmac_destroy(struct xy_msgmac *m);

/* The tag of the next frame (data[0..n), its header and payload); the
 * sequence number then moves on. 0, or -1 if OpenSSL failed: the caller
 * must then drop the connection (fails closed). */
int xy_msgmac_sign(struct xy_msgmac *m, const uint8_t *data, size_t n,
		   uint8_t tag[XY_MSGMAC_TAG]);
/* Checks the tag of the next frame in constant time. 0 if it is right
 * (the sequence number moves on), else -1. */
int xy_msgmac_verify(struct xy_msgmac *m, const uint8_t *data, size_t n,
		     const uint8_t tag[XY_MSGMAC_TAG]);
/* The frames signed or verified so far. */
uint64_t xy_msgmac_seq(const struct xy_msgmac *m);

#endif
