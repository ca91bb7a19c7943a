/*
 * xfer.h: transfer servers and clients: file bodies on connections of their
 * own, never on the loop that schedules. The manager runs a transfer server
 * for its files; every worker runs one for its cache. A client connects,
 * proves the secret (role TRANSFER), sends GET with an object id and a
 * token the manager issued, and reads an OBJECT header and the raw stream.
 * A connection may carry several GETs in turn.
 *
 * The server is a thread that accepts, and a thread per connection (at
 * most XY_XFER_MAX_CONN at once; more wait in the listen backlog). Both use
 * blocking sockets with deadlines.
 *
 * Pipelined broadcast (docs/dataplane.md): a GET may start at an offset,
 * and with XY_GET_PARTIAL the server also answers from an object that its
 * host is still receiving, sending its bytes as they come (cut-through:
 * as they are written, before their chunk is verified; each receiver
 * verifies every chunk itself). A
 * receiver publishes such an object with xy_xfer_partial_begin; the
 * table of them is shared by the receiving thread and every connection
 * thread, under a mutex with a condition variable that progress
 * broadcasts. The chunked client, with per-chunk verification and
 * failover between sources, is in xchunk.c.
 */
#ifndef XY_XFER_H
#define XY_XFER_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define XY_XFER_MAX_CONN 64
#define XY_XFER_TIMEOUT_MS 30000
/* A server accepts a token this many times: a receiver's GET, and the one
 * retry it makes after a corrupt chunk. */
#define XY_TOKEN_USES 2
/* How long a PARTIAL GET waits for its object to appear on the server's
 * host (its own FETCH may arrive just after its successor's GET). */
#define XY_PARTIAL_WAIT_MS 10000

/* Finds an object for the server: its path (NUL-terminated into path) and
 * kind. Returns 0 if present, -1 if not. Called from server threads, so it
 * must be thread-safe. */
typedef int (*xy_xfer_lookup_fn)(void *arg, const uint8_t id[XY_ID_LEN],
				 char *path, size_t pathlen, uint8_t *kind);

struct xy_xfer_server;

/* Starts serving on host:port (host NULL: all interfaces; port 0: any).
 * Returns NULL with a reason in err. */
struct xy_xfer_server *xy_xfer_server_start(const char *host, int port,
					    const void *secret,
					    size_t secret_len,
					    xy_xfer_lookup_fn lookup,
					    void *arg, char *err,
					    size_t errlen);
/* Serves over TLS 1.3 keyed by the secret (tls.h, "transfers"): call it
 * before the port is given to anyone. 0, or -1 with a reason in err. */
int xy_xfer_server_tls(struct xy_xfer_server *s, char *err, size_t errlen);
int xy_xfer_server_port(const struct xy_xfer_server *s);
uint64_t xy_xfer_server_bytes_sent(const struct xy_xfer_server *s);
/* Stops accepting, closes open connections, joins every thread.
 * stop(NULL) does nothing. */
void xy_xfer_server_stop(struct xy_xfer_server *s);

/* Test hook: the server flips the byte at this stream offset in every
 * stream it sends (-1: never). */
void xy_xfer_server_corrupt(struct xy_xfer_server *s, int64_t offset);

/* An object being received that the server may serve to PARTIAL GETs. */
struct xy_xfer_partial;

/* Publishes object id (kind, whole stream size) whose stream is being
 * written into the file fd (duplicated; the caller keeps its own).
 * Returns NULL if s is NULL or memory ran out (the object is then just
 * not served until complete). */
struct xy_xfer_partial *xy_xfer_partial_begin(struct xy_xfer_server *s,
					      const uint8_t id[XY_ID_LEN],
					      uint8_t kind, uint64_t size,
					      int fd);
/* The first `written` bytes of the stream are in the file and may be
 * served. It may go back (a chunk cut short is taken again, from
 * another source); readers then wait for it to pass them again. */
void xy_xfer_partial_progress(struct xy_xfer_partial *p, uint64_t written);
/* Ends the publication: ok means the whole stream is verified (readers
 * finish from the file), else readers still waiting are cut off. p is
 * freed when its last reader is done. end(NULL) does nothing. */
void xy_xfer_partial_end(struct xy_xfer_partial *p, int ok);

/* Connects to host:port within a deadline: a blocking socket tuned for
 * transfers, or -1 with a reason in err. */
int xy_xfer_connect(const char *host, int port, char *err, size_t errlen);
/* Connects as xy_xfer_connect and, with tls, runs TLS 1.3 keyed by the
 * secret over the socket: returns the socket (or -1 with a reason in
 * err), with *io the descriptor to speak on (the socket, or the plain
 * end of its TLS bridge, *br). xy_xfer_hangup ends both. */
struct xy_tls_bridge;
int xy_xfer_open(const char *host, int port, const void *secret,
		 size_t secret_len, int tls, struct xy_tls_bridge **br,
		 int *io, char *err, size_t errlen);
void xy_xfer_hangup(int fd, struct xy_tls_bridge *br);

/* The request half of a fetch on a connected fd: authenticates, sends
 * GET for id from offset (flags XY_GET_*) and reads the OBJECT header
 * into *hdr. Returns OK, with the body (hdr->size - offset bytes) about
 * to follow and *blame NONE; or the status, with a reason in err and
 * *blame HOST (the handshake failed: DENIED if refused) or OBJECT (the
 * source answered NOT_FOUND, DENIED or FAILED; any other status it sends
 * is FAILED, so that no status of the receiver's own comes from it). */
int xy_xfer_request(int fd, const void *secret, size_t secret_len,
		    const uint8_t id[XY_ID_LEN],
		    const uint8_t token[XY_TOKEN_LEN], const char *name,
		    uint64_t offset, uint8_t flags, struct xy_msg_object *hdr,
		    uint8_t *blame, char *err, size_t errlen);

/* Fetches object id from host:port into dest (which must not exist; see
 * xy_object_recv), as the receiver called name (the token's). Returns an
 * XY_OBJ_* status with a reason in err; *bytes receives the stream size
 * on success. Blocking: call it from a thread, never from an event
 * loop. */
int xy_xfer_fetch(const char *host, int port, const void *secret,
		  size_t secret_len, int tls, const uint8_t id[XY_ID_LEN],
		  const uint8_t token[XY_TOKEN_LEN], const char *name,
		  const char *dest, int readonly, uint64_t *bytes, char *err,
		  size_t errlen);
/* The same, and on failure *blame says whom: XY_BLAME_HOST if no
 * authenticated connection was made, XY_BLAME_NONE if the failure was
 * this host's own (creating or writing dest: a full disk), else
 * XY_BLAME_OBJECT (the source refused, lacked or broke off the
 * object, or sent a corrupt one). */
int xy_xfer_fetch_blame(const char *host, int port, const void *secret,
			size_t secret_len, int tls, const uint8_t id[XY_ID_LEN],
			const uint8_t token[XY_TOKEN_LEN], const char *name,
			const char *dest, int readonly, uint64_t *bytes,
			uint8_t *blame, char *err, size_t errlen);

/* A chunked fetch: an object with a chunk list, from sources in order. */
struct xy_xfer_spec {
	const void *secret;
	size_t secret_len;
	int tls; /* TLS keyed by the secret (xy_xfer_open) */
	const uint8_t *id;
	uint8_t kind;
	uint64_t size;
	const struct xy_chunks *chunks; /* n >= 2 */
	const struct xy_source *sources;
	uint32_t n_sources;
	const uint8_t *token;
	const char *name; /* the receiver, as the token names it */
	const char *dest; /* must not exist */
	int readonly;
	struct xy_xfer_server *server; /* publishes progress; may be NULL */
	/* Out, optional: XY_BLAME_* for each source that failed, indexed
	 * like sources (n_sources entries, zeroed by the caller). */
	uint8_t *blame;
};

/* Receives the stream into dest.stream chunk by chunk, verifying each
 * against the list and publishing verified bytes to spec->server. A
 * source that fails (cannot connect, NOT_FOUND, DENIED, a broken stream,
 * or a corrupt chunk twice) is left for the next, from the first
 * unverified chunk, and blamed in spec->blame; a corrupt chunk is fetched
 * once more from the same source first. A failure to write dest.stream
 * is this host's: it ends the fetch at once and blames no source, so
 * that one at least stays XY_BLAME_NONE (status NO_ROOM if the disk or a
 * quota was full). When every chunk is verified, the object is made at
 * dest (a directory is unpacked from the stream, which checks it against
 * id once more). The whole stream is not hashed again: the list is bound
 * to id where it was made (docs/dataplane.md, "Chunks and verification"),
 * so chunks that all match it are the stream whose hash is id. Returns
 * an XY_OBJ_* status with a reason in err; *verified is the bytes
 * verified. On OK, *pub is the publication still open, for the caller to
 * end once the object is where the server looks (in its cache); on
 * failure it is ended and *pub is NULL. */
int xy_xfer_fetch_chunks(const struct xy_xfer_spec *spec,
			 struct xy_xfer_partial **pub, uint64_t *verified,
			 char *err, size_t errlen);

#endif
