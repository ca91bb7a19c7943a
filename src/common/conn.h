/*
 * conn.h: a framed, authenticated control connection on a libuv TCP stream.
 *
 * A conn runs the handshake of auth.h (as server or client), then reads
 * frames, decodes them with proto.h, and calls on_msg for each. Sends are
 * encoded into an outgoing buffer and written in batches, so many small
 * messages cost one write. Before the handshake ends a frame may be at most
 * 1 KiB and the handshake must finish within 10 seconds.
 *
 * With opts.tls, all of it runs inside TLS 1.3 (memory BIOs between
 * OpenSSL and the stream). A TLS end meeting a plain one fails with a
 * reason that says so, and counts as refused. Without TLS, every frame
 * after the handshake carries a MAC (msgmac.h); one that fails closes
 * the conn before on_msg sees it.
 *
 * Lifetime: xy_conn_close marks the conn closing; on_close runs exactly
 * once, from libuv's close callback (never inside on_msg), and then the conn
 * is freed. The owner must drop its pointer in on_close.
 */
#ifndef XY_CONN_H
#define XY_CONN_H

#include <openssl/ssl.h>
#include <uv.h>

#include "proto.h"

struct xy_conn;

/* m is freed by the conn after the callback returns; a handler that keeps a
 * pointer field must set that field to NULL (steal it). */
typedef void (*xy_conn_msg_cb)(struct xy_conn *c, unsigned type,
			       union xy_msg *m);
/* Handshake done: for a server, role is what the client claimed. */
typedef void (*xy_conn_ready_cb)(struct xy_conn *c, uint8_t role);
/* reason is a short text: "closed by peer", "bad secret", ... */
typedef void (*xy_conn_close_cb)(struct xy_conn *c, const char *reason);

struct xy_conn_opts {
	const void *secret;
	size_t secret_len;
	uint8_t role; /* client: the role it claims; server: ignored */
	xy_conn_ready_cb on_ready;
	xy_conn_msg_cb on_msg;
	xy_conn_close_cb on_close;
	void *data;
	/* Client: a failure before the handshake ends is logged at debug
	 * level only, for an owner that reports it itself (a worker that
	 * retries while its manager is not up yet). */
	int quiet;
	/* TLS 1.3 (tls.h): a server context (xy_tls_server_ctx) for
	 * accept, a verifying client one (xy_tls_client_ctx) for connect,
	 * which then checks the server's certificate for the host it was
	 * given. The handshake of auth.h runs inside, its MACs keyed to the
	 * channel (xy_auth_bind_key). NULL: plain TCP. Not owned; it must
	 * outlive the conn. */
	SSL_CTX *tls;
};

/* Accepts a pending connection on server and starts the server side of the
 * handshake. Returns NULL on failure (nothing to clean up). The secret is
 * copied. */
struct xy_conn *xy_conn_accept(uv_stream_t *server,
			       const struct xy_conn_opts *opts);
/* Connects to host:port and starts the client side. Failures to connect
 * are reported through on_close. */
struct xy_conn *xy_conn_connect(uv_loop_t *loop, const char *host, int port,
				const struct xy_conn_opts *opts);

/* Queues a message. Returns -1 if the conn is closing or out of memory. */
int xy_conn_send(struct xy_conn *c, unsigned type, const union xy_msg *m);
/* While corked, frames sent queue without being written; uncorking
 * writes what queued (one write). The manager corks its workers' conns
 * for a scheduling round, so that the journal's records of the round are
 * written before its TASKs go (docs/durability.md). */
void xy_conn_cork(struct xy_conn *c, int corked);
void xy_conn_close(struct xy_conn *c, const char *reason);
int xy_conn_closing(const struct xy_conn *c);
/* 1 if the handshake failed for a reason that trying again would not
 * mend: the peer refused us (a bad secret, another protocol version), or
 * it spoke another version or could not prove the secret. 0 for every
 * other end (nothing listening, no route, no answer in time, a peer that
 * closed), and once the handshake is done. Valid until on_close returns. */
int xy_conn_refused(const struct xy_conn *c);

void *xy_conn_data(const struct xy_conn *c);
void xy_conn_set_data(struct xy_conn *c, void *data);
/* "ip:port" of the peer, and the ip alone. */
const char *xy_conn_peer(const struct xy_conn *c);
const char *xy_conn_peer_ip(const struct xy_conn *c);
/* The address this end of c is bound to, as text, into ip. 0 or -1. */
int xy_conn_local_ip(const struct xy_conn *c, char *ip, size_t len);
uint8_t xy_conn_role(const struct xy_conn *c);
/* Bytes queued but not yet written. */
size_t xy_conn_pending(const struct xy_conn *c);
/* Bytes of memory its buffers hold (read, queued, being written). */
size_t xy_conn_memory(const struct xy_conn *c);

#endif
