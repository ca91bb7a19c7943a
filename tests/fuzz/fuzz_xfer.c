/*
 * fuzz_xfer.c: libFuzzer target for what the data plane reads from a
 * peer (src/common/xfer.c, auth.c, object.c). The first byte picks the
 * reader; the rest is what the peer sent, written into one end of a
 * socket pair whose other end the reader gets (then closed, so a reader
 * that wants more sees end of file, never a wait):
 *
 *   0: the transfer server's requests after the handshake: GET frames
 *      read as conn_main reads them (at most GET_MAX bytes each), each
 *      token checked against the secret (xy_token_check) and its expiry
 *      read;
 *   1: the server's side of the handshake (xy_auth_server_fd), reading
 *      a client's HELLO and response;
 *   2: the client's side: xy_xfer_request reading a source's CHALLENGE,
 *      proof and OBJECT header;
 *   3: an object stream (xy_object_recv) of a file or, second byte odd,
 *      a directory, named by the SHA-256 of the stream so that a
 *      well-formed one is materialised, then removed.
 *
 * Readers must never read out of bounds, leak, crash or wait past their
 * deadline; a stream received must be under the destination and nowhere
 * else.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "object.h"
#include "proto.h"
#include "util.h"
#include "xfer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char secret[] = "fuzz-secret-0123456789abcdef";
static char dir[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	xy_log_set_level(-1);
	snprintf(dir, sizeof dir, "/tmp/xylem-fuzz-xfer-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	return 0;
}

/* A socket pair with data written into it and its writing side shut:
 * returns the reader's end; *peer is the other, for the reader's
 * replies (never read). */
static int feed(const uint8_t *data, size_t size, int *peer)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	int buf = 1 << 20;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
	if (size && xy_fd_write_all(sv[1], data, size, 1000) < 0)
		abort();
	shutdown(sv[1], SHUT_WR);
	*peer = sv[1];
	return sv[0];
}

static void requests(int fd)
{
	union xy_msg m;
	char err[256];

	while (xy_fd_recv_msg(fd, XY_MSG_GET, &m, XY_MAX_NAME + 256, 100, err,
			      sizeof err) == 0) {
		(void)xy_token_check(secret, sizeof secret - 1, m.get.id,
				     m.get.name, m.get.token, xy_mono_us());
		(void)xy_token_expiry(m.get.token);
		xy_msg_free(XY_MSG_GET, &m);
	}
}

static void stream(const uint8_t *data, size_t size, uint8_t flags)
{
	uint8_t id[XY_ID_LEN];
	unsigned int n = 0;
	char dest[128], err[256];
	int peer, fd, local;

	EVP_Digest(data, size, id, &n, EVP_sha256(), NULL);
	snprintf(dest, sizeof dest, "%s/obj", dir);
	fd = feed(data, size, &peer);
	int st = xy_object_recv(fd, flags & 1 ? XY_KIND_DIR : XY_KIND_FILE,
				size, id, dest, flags & 2, 100, &local, err,
				sizeof err);
	close(fd);
	close(peer);
	if (st == XY_OBJ_OK) {
		struct stat sb;

		if (lstat(dest, &sb) < 0)
			abort(); /* said OK, left nothing */
		xy_rm_rf(dest);
	}
	/* Nothing else may be left beside it. */
	if (rmdir(dir) < 0 && errno == ENOTEMPTY) {
		char cmd[128];

		snprintf(cmd, sizeof cmd, "ls -la %s >&2", dir);
		if (system(cmd) != 0)
			abort();
		abort();
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	uint8_t role, blame;
	int peer, fd;

	if (size < 2)
		return 0;
	switch (data[0] & 3) {
	case 0:
		fd = feed(data + 1, size - 1, &peer);
		requests(fd);
		break;
	case 1:
		fd = feed(data + 1, size - 1, &peer);
		(void)xy_auth_server_fd(fd, secret, sizeof secret - 1, &role,
					100, err, sizeof err);
		break;
	case 2: {
		uint8_t id[XY_ID_LEN] = {1}, tok[XY_TOKEN_LEN] = {2};
		struct xy_msg_object hdr;

		fd = feed(data + 1, size - 1, &peer);
		(void)xy_xfer_request(fd, secret, sizeof secret - 1, id, tok,
				      "fuzz", 0, 0, &hdr, &blame, err,
				      sizeof err);
		break;
	}
	default:
		stream(data + 2, size - 2, data[1]);
		return 0;
	}
	close(fd);
	close(peer);
	return 0;
}
