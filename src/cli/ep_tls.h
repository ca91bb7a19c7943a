/*
 * ep_tls.h: the shared endpoint's remote users (docs/endpoint.md, "Remote
 * users"): the TLS listener of the front (ep_tls.c), and the commands
 * `xylem endpoint enroll` and `xylem endpoint revoke` (ep_enroll.c).
 */
#ifndef XY_CLI_EP_TLS_H
#define XY_CLI_EP_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* The front's TLS side: its context (client certificates required), the
 * spawner's socketpair, and the state directory (for the revocation
 * list, read on every connection). */
struct xy_ep_tls {
	SSL_CTX *ctx;
	int spawner;
	const char *state;
	int keepalive; /* tls_keepalive: seconds silent before probes */
};

/* A listening TCP socket (non-blocking) at hostport, HOST:PORT (PORT 0:
 * any free one); the host into host, the port it got into *port. -1 with
 * a reason in err. */
int xy_ep_tls_listen(const char *hostport, char *host, size_t hostlen,
		     int *port, char *err, size_t errlen);

/* Takes every connection waiting on lfd; each gets a thread of its own
 * that runs the handshake, checks the certificate against the revocation
 * list, reads the request, asks the spawner, and then relays bytes
 * between the client and the user's session server. Clients beyond
 * what RLIMIT_NOFILE leaves room for (the Unix path keeps its share) are
 * closed at once, and so are those of a source address (IPv6: a /64)
 * that has 8 handshakes, or a quarter of the slots, at once already. 0, or -1 when accept failed for want of descriptors or
 * memory (EMFILE, ENFILE): the caller stops polling lfd for a while. */
int xy_ep_tls_accept(const struct xy_ep_tls *t, int lfd);

/* Called by the front's loop at each turn (every 100 ms at most): when
 * STATE/revoked changed since the last call, every relaying connection
 * checks its certificate's serial again, and one now revoked is cut
 * (within about a second, with a line in the endpoint's log). */
void xy_ep_tls_watch(const struct xy_ep_tls *t);

/* `xylem endpoint enroll` and `xylem endpoint revoke` (argv[0] is the
 * subcommand): the process exit status. */
int xy_cli_endpoint_enroll(int argc, char **argv);
int xy_cli_endpoint_revoke(int argc, char **argv);

#endif
