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
 */
#ifndef XY_XFER_H
#define XY_XFER_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define XY_XFER_MAX_CONN 64
#define XY_XFER_TIMEOUT_MS 30000

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
int xy_xfer_server_port(const struct xy_xfer_server *s);
uint64_t xy_xfer_server_bytes_sent(const struct xy_xfer_server *s);
/* Stops accepting, closes open connections, joins every thread.
 * stop(NULL) does nothing. */
void xy_xfer_server_stop(struct xy_xfer_server *s);

/* Fetches object id from host:port into dest (which must not exist; see
 * xy_object_recv). Returns an XY_OBJ_* status with a reason in err;
 * *bytes receives the stream size on success. Blocking: call it from a
 * thread, never from an event loop. */
int xy_xfer_fetch(const char *host, int port, const void *secret,
		  size_t secret_len, const uint8_t id[XY_ID_LEN],
		  const uint8_t token[XY_TOKEN_LEN], const char *dest,
		  int readonly, uint64_t *bytes, char *err, size_t errlen);

#endif
