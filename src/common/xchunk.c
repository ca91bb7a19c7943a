/*
 * xchunk.c: the chunked fetch client of xfer.h (xy_xfer_fetch_chunks).
 * An object with a chunk list is received into "dest.stream" one chunk at
 * a time; each chunk is verified against the list (which came from the
 * manager, never from the source) before it counts, and verified bytes
 * are published to this host's transfer server, so that a successor in a
 * broadcast chain reads them while the rest still arrives. Sources are
 * tried in order, each from the first unverified chunk, and each one that
 * fails is blamed for the manager (docs/dataplane.md).
 */
#include "xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "auth.h"
#include "log.h"
#include "object.h"
#include "util.h"

#define RXBUF (256 * 1024)

struct rx {
	const struct xy_xfer_spec *sp;
	int fd; /* dest.stream */
	EVP_MD_CTX *chunk;
	uint32_t next;     /* the first unverified chunk */
	uint64_t verified; /* its offset */
	struct xy_xfer_partial *pub;
	uint8_t *buf;
	char why[256]; /* the last source's failure */
	uint8_t blame; /* XY_BLAME_* for that failure */
};

static uint64_t chunk_len(const struct rx *rx, uint32_t k)
{
	uint64_t cs = rx->sp->chunks->chunk_size, off = (uint64_t)k * cs;
	return rx->sp->size - off < cs ? rx->sp->size - off : cs;
}

/* Records why the current source failed, and whom that blames. */
static int rx_fail(struct rx *rx, int status, uint8_t blame,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int rx_fail(struct rx *rx, int status, uint8_t blame,
		   const char *fmt, ...)
{
	va_list ap;
	rx->blame = blame;
	va_start(ap, fmt);
	vsnprintf(rx->why, sizeof rx->why, fmt, ap);
	va_end(ap);
	return status;
}

/* Reads up to n bytes from the socket within the transfer timeout. */
static ssize_t read_some(int sock, void *p, size_t n)
{
	for (;;) {
		struct pollfd pf = {.fd = sock, .events = POLLIN};
		int k = poll(&pf, 1, XY_XFER_TIMEOUT_MS);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		ssize_t r = k < 0 ? -1 : read(sock, p, n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r == 0)
			errno = ECONNRESET;
		return r > 0 ? r : -1;
	}
}

/* Writes n bytes at off into the stream file. A short write (the disk
 * filled up part way) is continued, so that the error reported is the
 * one that stopped it (ENOSPC), not a stale errno. */
static int write_at(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = ENOSPC;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Receives chunk rx->next from the socket into the file and checks it.
 * Returns OK, CORRUPT, FAILED, or NO_ROOM (this host could not write it). */
static int recv_chunk(struct rx *rx, int sock)
{
	uint64_t len = chunk_len(rx, rx->next), off = rx->verified, got = 0;
	const uint8_t *want = rx->sp->chunks->hash + (size_t)rx->next * XY_ID_LEN;
	uint8_t have[XY_ID_LEN];
	unsigned int hl = XY_ID_LEN;
	if (EVP_DigestInit_ex(rx->chunk, EVP_sha256(), NULL) != 1)
		return rx_fail(rx, XY_OBJ_FAILED, XY_BLAME_NONE,
			       "SHA-256 failed");
	/* A chunk cut short is taken again, whole, from the next source;
	 * its bytes here are simply written over. */
	while (got < len) {
		size_t want_n = len - got < RXBUF ? (size_t)(len - got) : RXBUF;
		ssize_t r = read_some(sock, rx->buf, want_n);
		if (r < 0)
			return rx_fail(rx, XY_OBJ_FAILED, XY_BLAME_OBJECT,
				       "reading chunk %u: %s", rx->next,
				       strerror(errno));
		if (write_at(rx->fd, rx->buf, (size_t)r, off + got) < 0)
			return rx_fail(rx, xy_object_write_status(errno),
				       XY_BLAME_NONE,
				       "cannot write chunk %u to disk: %s",
				       rx->next, strerror(errno));
		EVP_DigestUpdate(rx->chunk, rx->buf, (size_t)r);
		got += (uint64_t)r;
		/* Cut-through: a successor in the chain gets these bytes
		 * now, not a chunk later; it checks the chunk itself. */
		xy_xfer_partial_progress(rx->pub, off + got);
	}
	EVP_DigestFinal_ex(rx->chunk, have, &hl);
	if (memcmp(have, want, XY_ID_LEN) != 0)
		return rx_fail(rx, XY_OBJ_CORRUPT, XY_BLAME_OBJECT,
			       "chunk %u is corrupt", rx->next);
	rx->next++;
	rx->verified += len;
	xy_xfer_partial_progress(rx->pub, rx->verified);
	return XY_OBJ_OK;
}

/* Asks src for the stream from the first unverified chunk. Returns OK
 * with the body about to follow on *sock, or why not. */
static int request(struct rx *rx, const struct xy_source *src, int *sock,
		   int *tcp, struct xy_tls_bridge **br)
{
	const struct xy_xfer_spec *sp = rx->sp;
	struct xy_msg_object hdr;
	char err[200];
	int fd;
	*tcp = xy_xfer_open(src->host, src->port, sp->secret, sp->secret_len,
			    sp->tls, br, &fd, err, sizeof err);
	if (*tcp < 0)
		return rx_fail(rx, XY_OBJ_FAILED, XY_BLAME_HOST, "%s", err);
	*sock = fd;
	uint8_t blame;
	int st = xy_xfer_request(fd, sp->secret, sp->secret_len, sp->id,
				 sp->token, sp->name, rx->verified,
				 src->partial ? XY_GET_PARTIAL : 0, &hdr, &blame,
				 err, sizeof err);
	if (st != XY_OBJ_OK)
		return rx_fail(rx, st, blame, "%s", err);
	if (hdr.kind != sp->kind || hdr.size != sp->size)
		return rx_fail(rx, XY_OBJ_FAILED, XY_BLAME_OBJECT,
			       "source has another object");
	return XY_OBJ_OK;
}

/* One connection to src: chunks until the end, a corrupt chunk, or a
 * failure. */
static int attempt(struct rx *rx, const struct xy_source *src)
{
	int sock = -1, tcp = -1;
	struct xy_tls_bridge *br = NULL;
	int st = request(rx, src, &sock, &tcp, &br);
	while (st == XY_OBJ_OK && rx->next < rx->sp->chunks->n)
		st = recv_chunk(rx, sock);
	xy_xfer_hangup(tcp, br);
	return st;
}

/* Every chunk is verified: makes dest. The stream is not hashed whole
 * once more. Each chunk matched its SHA-256 in the manager's list, and
 * that list was made in the same pass over the same bytes as the id
 * (xy_object_hash_chunks, on the manager or on the worker that wrote or
 * downloaded the object), so the stream is the one whose hash is id; a
 * second pass would only spend a core's worth of SHA-256 per relay of a
 * broadcast. */
static int finish(struct rx *rx, const char *stream, char *err,
		  size_t errlen)
{
	const struct xy_xfer_spec *sp = rx->sp;
	if (sp->kind == XY_KIND_FILE) {
		if (fchmod(rx->fd, sp->readonly ? 0555 : 0644) < 0 ||
		    rename(stream, sp->dest) < 0) {
			xy_fail(err, errlen, errno, "cannot make %s: %s",
				sp->dest, strerror(errno));
			return XY_OBJ_FAILED;
		}
		return XY_OBJ_OK;
	}
	/* A directory is unpacked from its verified stream (and checked
	 * once more as it is parsed). */
	if (lseek(rx->fd, 0, SEEK_SET) < 0)
		return XY_OBJ_FAILED;
	int st = xy_object_recv(rx->fd, sp->kind, sp->size, sp->id, sp->dest,
				sp->readonly, XY_XFER_TIMEOUT_MS, NULL, err,
				errlen);
	unlink(stream);
	return st;
}

/* Tries the sources in order; a corrupt chunk is fetched once more from
 * the same source. A failure of this host's own (blaming nobody: its
 * disk is full) ends the fetch there, since every source would meet the
 * same disk. */
static int run_sources(struct rx *rx)
{
	const struct xy_xfer_spec *sp = rx->sp;
	char hex[2 * XY_ID_LEN + 1];
	int st = XY_OBJ_FAILED;
	xy_hex(sp->id, XY_ID_LEN, hex);
	for (uint32_t i = 0; i < sp->n_sources; i++) {
		const struct xy_source *src = &sp->sources[i];
		int corrupt = 0;
		do {
			st = attempt(rx, src);
			if (st == XY_OBJ_OK)
				return st;
			XY_LOGW("xfer", "%.16s from %s:%u: %s", hex, src->host,
				src->port, rx->why);
		} while (st == XY_OBJ_CORRUPT && ++corrupt < 2);
		if (sp->blame)
			sp->blame[i] = rx->blame;
		if (rx->blame == XY_BLAME_NONE)
			break;
	}
	return st;
}

int xy_xfer_fetch_chunks(const struct xy_xfer_spec *sp,
			 struct xy_xfer_partial **pub, uint64_t *verified,
			 char *err, size_t errlen)
{
	struct rx rx = {.sp = sp, .fd = -1};
	char stream[4200];
	int st = XY_OBJ_FAILED;
	*pub = NULL;
	snprintf(stream, sizeof stream, "%s.stream", sp->dest);
	rx.chunk = EVP_MD_CTX_new();
	rx.buf = malloc(RXBUF);
	if (!rx.chunk || !rx.buf)
		xy_fail(err, errlen, ENOMEM, "out of memory");
	else if ((rx.fd = open(stream, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
			       0600)) < 0) {
		st = xy_object_write_status(errno);
		xy_fail(err, errlen, errno, "cannot create %s: %s", stream,
			strerror(errno));
	} else if (!sp->chunks || sp->chunks->n < 2 || sp->n_sources == 0)
		xy_fail(err, errlen, EINVAL, "no chunk list or no source");
	else {
		rx.pub = xy_xfer_partial_begin(sp->server, sp->id, sp->kind,
					       sp->size, rx.fd);
		st = run_sources(&rx);
		if (st != XY_OBJ_OK && rx.blame == XY_BLAME_NONE)
			xy_fail(err, errlen, EIO, "%s", rx.why);
		else if (st != XY_OBJ_OK)
			xy_fail(err, errlen, EIO, "%u source%s failed, last: %s",
				sp->n_sources, sp->n_sources > 1 ? "s" : "",
				rx.why);
		else
			st = finish(&rx, stream, err, errlen);
	}
	if (rx.fd >= 0)
		close(rx.fd);
	if (st != XY_OBJ_OK) {
		unlink(stream);
		xy_xfer_partial_end(rx.pub, 0);
	} else {
		*pub = rx.pub;
	}
	*verified = rx.verified;
	EVP_MD_CTX_free(rx.chunk);
	free(rx.buf);
	return st;
}
