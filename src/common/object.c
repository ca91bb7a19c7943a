/*
 * object.c: content-addressed objects (object.h). One walker produces the
 * stream of a file or a directory, for hashing, for sizing and for
 * sending; one parser reads a stream from a socket, materialises it under
 * "dest.part" while hashing it, and renames it into place only if the
 * hash matches. Pairs with xfer.c, which moves streams between hosts.
 *
 * The canonical directory stream, which defines a directory's id:
 *
 *   "XYDIR1\0\0", then one entry per path below the root, then u8 0xff.
 *   An entry is u8 type (1 file, 2 dir, 3 symlink), u32 mode, str path
 *   (relative, '/'-separated), then u64 size and the bytes for a file, or
 *   str target for a symlink.
 *
 * Order: a depth-first walk that visits each directory's entries sorted
 * bytewise by name (strcmp) and emits a directory before its children.
 * So parents come before children, and siblings in name order. (This
 * differs from sorting whole paths bytewise when a name contains a byte
 * below '/', e.g. "a-b" against "a/x"; the walk order is the canonical
 * one.)
 *
 * Modes are canonical too, so that an id does not depend on the umask or
 * on a cache having made its copy read-only: a file is 0755 if any
 * execute bit is set and 0644 otherwise; a directory is 0755; a symlink
 * 0777. Other file types (sockets, devices, fifos) cannot be objects.
 */
#include "object.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util.h"

#define IOBUF (256 * 1024)
#define DIR_MAGIC "XYDIR1\0\0"
#define DIR_MAGIC_LEN 8
#define END_MARK 0xff
#define SENDFILE_WAIT_MS 30000

enum { ENT_FILE = 1, ENT_DIR = 2, ENT_LINK = 3 };

/* ---- Producing streams ---- */

/* Walker output: bytes collect in buf and go to sink when it fills. In
 * count mode nothing is read or written; only total grows. */
struct out {
	xy_sink_fn sink;
	void *arg;
	int count_only;
	uint64_t total;
	uint8_t *buf;
	size_t len;
	char *err;
	size_t errlen;
};

static int out_flush(struct out *o)
{
	if (o->len == 0)
		return 0;
	size_t n = o->len;
	o->len = 0;
	if (o->sink(o->arg, o->buf, n) < 0)
		return xy_fail(o->err, o->errlen, errno ? errno : EIO,
			       "stream consumer stopped");
	return 0;
}

static int out_put(struct out *o, const void *p, size_t n)
{
	o->total += n;
	if (o->count_only)
		return 0;
	const uint8_t *s = p;
	while (n > 0) {
		size_t k = IOBUF - o->len < n ? IOBUF - o->len : n;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
		if (o->len == IOBUF && out_flush(o) < 0)
			return -1;
	}
	return 0;
}

static int out_le(struct out *o, uint64_t v, int n)
{
	uint8_t b[8];
	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return out_put(o, b, n);
}

static int out_str(struct out *o, const char *s, size_t n)
{
	if (out_le(o, n, 4) < 0)
		return -1;
	return out_put(o, s, n);
}

/* Appends exactly size bytes of the file at path to the stream. Inside a
 * directory links are entries of their own, so follow is 0 there. */
static int out_file(struct out *o, const char *path, uint64_t size,
		    int follow)
{
	if (o->count_only) {
		o->total += size;
		return 0;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
	if (fd < 0)
		return xy_fail(o->err, o->errlen, errno, "cannot open %s: %s",
			       path, strerror(errno));
	uint64_t left = size;
	while (left > 0) {
		if (o->len == IOBUF && out_flush(o) < 0)
			break;
		size_t want = IOBUF - o->len;
		if (want > left)
			want = (size_t)left;
		ssize_t r = read(fd, o->buf + o->len, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			xy_fail(o->err, o->errlen, r < 0 ? errno : EIO,
				"cannot read %s: %s", path,
				r < 0 ? strerror(errno) : "file shrank");
			break;
		}
		o->len += (size_t)r;
		o->total += (uint64_t)r;
		left -= (uint64_t)r;
	}
	close(fd);
	return left ? -1 : 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in directory path, sorted; NULL on error. */
static char **sorted_names(const char *path, size_t *count, struct out *o)
{
	DIR *d = opendir(path);
	if (!d) {
		xy_fail(o->err, o->errlen, errno, "cannot open %s: %s", path,
			strerror(errno));
		return NULL;
	}
	size_t n = 0, cap = 16;
	char **names = malloc(cap * sizeof *names);
	struct dirent *e;
	while (names && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n == cap) {
			char **p = realloc(names, 2 * cap * sizeof *names);
			if (!p)
				break;
			names = p;
			cap *= 2;
		}
		if (!(names[n] = strdup(e->d_name)))
			break;
		n++;
	}
	int failed = !names || e != NULL;
	closedir(d);
	if (failed) {
		for (size_t i = 0; names && i < n; i++)
			free(names[i]);
		free(names);
		xy_fail(o->err, o->errlen, ENOMEM, "out of memory");
		return NULL;
	}
	qsort(names, n, sizeof *names, by_name);
	*count = n;
	return names;
}

static int walk_dir(struct out *o, char *abs, size_t abs_len, size_t rel_off);

/* Emits the entry for the path in abs (its relative part starting at
 * rel_off), recursing into directories. */
static int walk_entry(struct out *o, char *abs, size_t abs_len,
		      size_t rel_off)
{
	struct stat st;
	const char *rel = abs + rel_off;
	size_t rel_len = abs_len - rel_off;
	if (lstat(abs, &st) < 0)
		return xy_fail(o->err, o->errlen, errno, "cannot stat %s: %s",
			       abs, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		uint32_t mode = st.st_mode & 0111 ? 0755 : 0644;
		if (out_le(o, ENT_FILE, 1) < 0 || out_le(o, mode, 4) < 0 ||
		    out_str(o, rel, rel_len) < 0 ||
		    out_le(o, (uint64_t)st.st_size, 8) < 0)
			return -1;
		return out_file(o, abs, (uint64_t)st.st_size, 0);
	}
	if (S_ISDIR(st.st_mode)) {
		if (out_le(o, ENT_DIR, 1) < 0 || out_le(o, 0755, 4) < 0 ||
		    out_str(o, rel, rel_len) < 0)
			return -1;
		return walk_dir(o, abs, abs_len, rel_off);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[XY_MAX_NAME + 1];
		ssize_t n = readlink(abs, target, sizeof target);
		if (n < 0 || n > XY_MAX_NAME)
			return xy_fail(o->err, o->errlen,
				       n < 0 ? errno : EINVAL,
				       "cannot read link %s", abs);
		if (out_le(o, ENT_LINK, 1) < 0 || out_le(o, 0777, 4) < 0 ||
		    out_str(o, rel, rel_len) < 0)
			return -1;
		return out_str(o, target, (size_t)n);
	}
	return xy_fail(o->err, o->errlen, EINVAL,
		       "%s is not a file, directory or symlink", abs);
}

static int walk_dir(struct out *o, char *abs, size_t abs_len, size_t rel_off)
{
	size_t n = 0;
	char **names = sorted_names(abs, &n, o);
	if (!names)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		size_t k = strlen(names[i]), len = abs_len + 1 + k;
		/* The relative part must stay a valid sandbox name. */
		if (len - rel_off > XY_MAX_NAME || len >= 2 * PATH_MAX) {
			rc = xy_fail(o->err, o->errlen, ENAMETOOLONG,
				     "path too long under %s", abs);
			break;
		}
		abs[abs_len] = '/';
		memcpy(abs + abs_len + 1, names[i], k + 1);
		rc = walk_entry(o, abs, len, rel_off);
		abs[abs_len] = 0;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* Writes the whole stream of path (of the given kind) to o. */
static int produce(struct out *o, const char *path, uint8_t kind)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return xy_fail(o->err, o->errlen, errno, "cannot stat %s: %s",
			       path, strerror(errno));
	if (kind == XY_KIND_FILE) {
		if (!S_ISREG(st.st_mode))
			return xy_fail(o->err, o->errlen, EINVAL,
				       "%s is not a regular file", path);
		if (out_file(o, path, (uint64_t)st.st_size, 1) < 0)
			return -1;
		return o->count_only ? 0 : out_flush(o);
	}
	if (kind != XY_KIND_DIR || !S_ISDIR(st.st_mode))
		return xy_fail(o->err, o->errlen, EINVAL,
			       "%s is not a directory", path);
	size_t plen = strlen(path);
	if (plen >= PATH_MAX)
		return xy_fail(o->err, o->errlen, ENAMETOOLONG,
			       "path too long: %s", path);
	char *abs = malloc(2 * PATH_MAX);
	if (!abs)
		return xy_fail(o->err, o->errlen, ENOMEM, "out of memory");
	memcpy(abs, path, plen + 1);
	/* Relative paths start after "path/". */
	int rc = out_put(o, DIR_MAGIC, DIR_MAGIC_LEN);
	if (rc == 0)
		rc = walk_dir(o, abs, plen, plen + 1);
	free(abs);
	if (rc == 0)
		rc = out_le(o, END_MARK, 1);
	if (rc == 0 && !o->count_only)
		rc = out_flush(o);
	return rc;
}

/* Sends a file to fd_out with sendfile, waiting for a non-blocking or
 * timed-out socket to drain. */
static int send_file(const char *path, int fd_out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return xy_fail(err, errlen, e, "cannot open %s: %s", path,
			       strerror(e));
	}
	off_t off = 0;
	int rc = 0;
	while (off < st.st_size) {
		size_t want = st.st_size - off > (1 << 30) ? (1 << 30)
							  : st.st_size - off;
		ssize_t n = sendfile(fd_out, fd, &off, want);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {.fd = fd_out, .events = POLLOUT};
			if (poll(&p, 1, SENDFILE_WAIT_MS) > 0)
				continue;
			errno = ETIMEDOUT;
		}
		rc = xy_fail(err, errlen, n < 0 ? errno : EIO,
			     "sending %s: %s", path,
			     n < 0 ? strerror(errno) : "file shrank");
		break;
	}
	close(fd);
	return rc;
}

int xy_object_stream(const char *path, uint8_t kind, xy_sink_fn sink,
		     void *arg, int fd_out, char *err, size_t errlen)
{
	if (kind == XY_KIND_FILE && fd_out >= 0)
		return send_file(path, fd_out, err, errlen);
	struct out o = {.sink = sink, .arg = arg, .err = err,
			.errlen = errlen};
	o.buf = malloc(IOBUF);
	if (!o.buf)
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	int rc = produce(&o, path, kind);
	free(o.buf);
	return rc;
}

int xy_object_stat(const char *path, uint8_t *kind, uint64_t *size,
		   char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return xy_fail(err, errlen, errno, "cannot stat %s: %s", path,
			       strerror(errno));
	uint8_t k = S_ISDIR(st.st_mode) ? XY_KIND_DIR : XY_KIND_FILE;
	struct out o = {.count_only = 1, .err = err, .errlen = errlen};
	if (produce(&o, path, k) < 0)
		return -1;
	if (kind)
		*kind = k;
	if (size)
		*size = o.total;
	return 0;
}

/* Hashing state: the whole stream, and each chunk of it when cs != 0. */
struct hasher {
	EVP_MD_CTX *whole, *chunk;
	uint32_t cs;
	uint64_t in_chunk; /* bytes of the current chunk so far */
	struct xy_chunks *out;
	uint32_t cap;
};

static int chunk_end(struct hasher *h)
{
	struct xy_chunks *c = h->out;
	unsigned int len = XY_ID_LEN;
	if (c->n == h->cap) {
		if (h->cap > XY_MAX_CHUNKS)
			return -1;
		uint32_t cap = h->cap ? 2 * h->cap : 16;
		uint8_t *p = realloc(c->hash, (size_t)cap * XY_ID_LEN);
		if (!p)
			return -1;
		c->hash = p;
		h->cap = cap;
	}
	if (EVP_DigestFinal_ex(h->chunk, c->hash + (size_t)c->n * XY_ID_LEN,
			       &len) != 1 ||
	    EVP_DigestInit_ex(h->chunk, EVP_sha256(), NULL) != 1)
		return -1;
	c->n++;
	h->in_chunk = 0;
	return 0;
}

static int hash_sink(void *arg, const void *p, size_t n)
{
	struct hasher *h = arg;
	const uint8_t *b = p;
	if (EVP_DigestUpdate(h->whole, p, n) != 1)
		return -1;
	while (h->cs && n > 0) {
		size_t k = h->cs - h->in_chunk < n ? h->cs - h->in_chunk : n;
		if (EVP_DigestUpdate(h->chunk, b, k) != 1)
			return -1;
		h->in_chunk += k;
		b += k;
		n -= k;
		if (h->in_chunk == h->cs && chunk_end(h) < 0)
			return -1;
	}
	return 0;
}

/* Hashes path of kind k with chunks of cs bytes (0: none) into h. */
static int hash_run(const char *path, uint8_t k, struct hasher *h,
		    uint8_t id[XY_ID_LEN], uint64_t *size, char *err,
		    size_t errlen)
{
	h->whole = EVP_MD_CTX_new();
	h->chunk = h->cs ? EVP_MD_CTX_new() : NULL;
	if (!h->whole || EVP_DigestInit_ex(h->whole, EVP_sha256(), NULL) != 1 ||
	    (h->cs && (!h->chunk || EVP_DigestInit_ex(h->chunk, EVP_sha256(),
						       NULL) != 1))) {
		EVP_MD_CTX_free(h->whole);
		EVP_MD_CTX_free(h->chunk);
		return xy_fail(err, errlen, ENOMEM, "cannot start SHA-256");
	}
	struct out o = {.sink = hash_sink, .arg = h, .err = err,
			.errlen = errlen};
	o.buf = malloc(IOBUF);
	int rc = o.buf ? produce(&o, path, k)
		       : xy_fail(err, errlen, ENOMEM, "out of memory");
	unsigned int n = XY_ID_LEN;
	if (rc == 0 && EVP_DigestFinal_ex(h->whole, id, &n) != 1)
		rc = xy_fail(err, errlen, EIO, "cannot finish SHA-256");
	if (rc == 0 && h->cs && h->in_chunk && chunk_end(h) < 0)
		rc = xy_fail(err, errlen, ENOMEM, "cannot hash chunks");
	free(o.buf);
	EVP_MD_CTX_free(h->whole);
	EVP_MD_CTX_free(h->chunk);
	*size = o.total;
	return rc;
}

int xy_object_hash(const char *path, uint8_t id[XY_ID_LEN], uint8_t *kind,
		   uint64_t *size, char *err, size_t errlen)
{
	return xy_object_hash_chunks(path, id, kind, size, NULL, err, errlen);
}

int xy_object_hash_chunks(const char *path, uint8_t id[XY_ID_LEN],
			  uint8_t *kind, uint64_t *size,
			  struct xy_chunks *chunks, char *err, size_t errlen)
{
	struct stat st;
	struct xy_chunks tmp = {0};
	struct hasher h = {.out = chunks ? chunks : &tmp};
	uint64_t total = 0;
	if (chunks)
		memset(chunks, 0, sizeof *chunks);
	if (stat(path, &st) < 0)
		return xy_fail(err, errlen, errno, "cannot stat %s: %s", path,
			       strerror(errno));
	uint8_t k = S_ISDIR(st.st_mode) ? XY_KIND_DIR : XY_KIND_FILE;
	/* Only an object of more than one chunk has a list; a directory's
	 * stream size takes a walk of its metadata to learn. */
	if (chunks && k == XY_KIND_FILE)
		total = (uint64_t)st.st_size;
	else if (chunks && xy_object_stat(path, NULL, &total, err, errlen) < 0)
		return -1;
	if (chunks && xy_chunk_count(total, xy_chunk_size_for(total)))
		h.cs = xy_chunk_size_for(total);
	int rc = hash_run(path, k, &h, id, &total, err, errlen);
	if (rc < 0 || !h.cs || xy_chunk_count(total, h.cs) != h.out->n) {
		/* No list, or the object changed size while hashed. */
		free(h.out->hash);
		memset(h.out, 0, sizeof *h.out);
	} else {
		h.out->chunk_size = h.cs;
	}
	if (rc == 0) {
		if (kind)
			*kind = k;
		if (size)
			*size = total;
	}
	return rc;
}

/* ---- Receiving streams ---- */

int xy_object_write_status(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EFBIG ? XY_OBJ_NO_ROOM
							      : XY_OBJ_FAILED;
}

/* Stream input: exactly `left` more bytes may come from fd; every byte is
 * hashed as it arrives. status is the XY_OBJ_* class of the first error;
 * broken says that it was the stream's (it ended, stalled or failed), not
 * this host's own. */
struct in {
	int fd;
	int timeout_ms;
	uint64_t left;
	uint8_t *buf;
	size_t pos, len;
	EVP_MD_CTX *md;
	int status;
	int broken;
	char *err;
	size_t errlen;
};

static int in_fail(struct in *in, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int in_fail(struct in *in, int status, const char *fmt, ...)
{
	if (in->status != XY_OBJ_OK)
		return -1;
	in->status = status;
	if (in->err && in->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(in->err, in->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Refills the buffer once it is used up. */
static int in_fill(struct in *in)
{
	if (in->pos < in->len)
		return 0;
	if (in->left == 0)
		return in_fail(in, XY_OBJ_CORRUPT, "stream ends too early");
	size_t want = in->left < IOBUF ? (size_t)in->left : IOBUF;
	for (;;) {
		struct pollfd p = {.fd = in->fd, .events = POLLIN};
		int k = poll(&p, 1, in->timeout_ms);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0) {
			in->broken = in->status == XY_OBJ_OK;
			return in_fail(in, XY_OBJ_FAILED, "read timed out");
		}
		ssize_t r = k < 0 ? -1 : read(in->fd, in->buf, want);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0) {
			in->broken = in->status == XY_OBJ_OK;
			return in_fail(in, XY_OBJ_FAILED, "reading stream: %s",
				       r < 0 ? strerror(errno)
				       : "connection closed");
		}
		EVP_DigestUpdate(in->md, in->buf, (size_t)r);
		in->left -= (uint64_t)r;
		in->pos = 0;
		in->len = (size_t)r;
		return 0;
	}
}

static int in_get(struct in *in, void *out, size_t n)
{
	uint8_t *d = out;
	while (n > 0) {
		if (in_fill(in) < 0)
			return -1;
		size_t k = in->len - in->pos < n ? in->len - in->pos : n;
		memcpy(d, in->buf + in->pos, k);
		in->pos += k;
		d += k;
		n -= k;
	}
	return 0;
}

static int in_le(struct in *in, uint64_t *v, int n)
{
	uint8_t b[8];
	if (in_get(in, b, n) < 0)
		return -1;
	*v = 0;
	for (int i = 0; i < n; i++)
		*v |= (uint64_t)b[i] << (8 * i);
	return 0;
}

/* A length-prefixed string of 1..max bytes with no NUL, into out. */
static int in_str(struct in *in, char *out, size_t max, const char *what)
{
	uint64_t n;
	if (in_le(in, &n, 4) < 0)
		return -1;
	if (n == 0 || n > max)
		return in_fail(in, XY_OBJ_CORRUPT, "bad %s length %llu", what,
			       (unsigned long long)n);
	if (in_get(in, out, (size_t)n) < 0)
		return -1;
	out[n] = 0;
	if (strlen(out) != n)
		return in_fail(in, XY_OBJ_CORRUPT, "NUL byte in %s", what);
	return 0;
}

/* Copies n stream bytes into the file fd, at path. */
static int in_copy(struct in *in, int fd, const char *path, uint64_t n)
{
	while (n > 0) {
		if (in_fill(in) < 0)
			return -1;
		size_t k = in->len - in->pos;
		if (k > n)
			k = (size_t)n;
		const uint8_t *p = in->buf + in->pos;
		size_t done = 0;
		while (done < k) {
			ssize_t w = write(fd, p + done, k - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return in_fail(in, xy_object_write_status(errno),
					       "cannot write %s: %s", path,
					       strerror(errno));
			done += (size_t)w;
		}
		in->pos += k;
		n -= k;
	}
	return 0;
}

/* Creates the file at path with the given mode and fills it from the
 * stream. */
static int recv_file(struct in *in, const char *path, uint32_t mode,
		     uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC, (mode & 0777) | 0600);
	if (fd < 0)
		return in_fail(in, xy_object_write_status(errno),
			       "cannot create %s: %s", path, strerror(errno));
	int rc = in_copy(in, fd, path, size);
	if (close(fd) < 0 && rc == 0)
		rc = in_fail(in, xy_object_write_status(errno),
			     "writing %s: %s", path, strerror(errno));
	return rc;
}

/* Length of the first component of s (up to '/' or the end). */
static size_t comp_len(const char *s)
{
	const char *slash = strchr(s, '/');
	return slash ? (size_t)(slash - s) : strlen(s);
}

/* Checks that path may follow prev in canonical order. prev_dir says
 * whether prev was a directory. Every ancestor of prev is a directory
 * this receiver made, so a path that passes can only land inside one of
 * those: never under a symlink or a file. */
static int check_order(const char *prev, int prev_dir, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	const char *base = slash ? slash + 1 : path;
	size_t plen = strlen(prev);
	if (plen == 0)
		return dlen == 0 ? 0 : -1; /* the first entry is top-level */
	if (dlen == plen && !memcmp(prev, path, dlen))
		return prev_dir ? 0 : -1; /* first child of prev */
	if (dlen && (dlen >= plen || memcmp(prev, path, dlen) ||
		     prev[dlen] != '/'))
		return -1; /* parent is not an ancestor of prev */
	/* A later sibling of prev's ancestor (or of prev) at this level. */
	const char *sib = prev + (dlen ? dlen + 1 : 0);
	size_t slen = comp_len(sib), blen = strlen(base);
	int c = memcmp(base, sib, slen < blen ? slen : blen);
	if (c == 0)
		c = blen < slen ? -1 : blen > slen ? 1 : 0;
	return c > 0 ? 0 : -1;
}

/* Scratch space for receiving a directory. */
struct names {
	char path[XY_MAX_NAME + 1];
	char prev[XY_MAX_NAME + 1]; /* the previous entry's path */
	int prev_dir;               /* and whether it was a directory */
	char full[2 * PATH_MAX];
};

/* Reads one directory entry of the given type and makes it under root. */
static int recv_entry(struct in *in, int type, const char *root,
		      struct names *nm)
{
	char *path = nm->path, *prev = nm->prev, *full = nm->full;
	int *prev_dir = &nm->prev_dir;
	uint64_t mode, size;
	char why[256];
	if (in_le(in, &mode, 4) < 0 ||
	    in_str(in, path, XY_MAX_NAME, "path") < 0)
		return -1;
	if (xy_check_sandbox_name(path, why, sizeof why) < 0)
		return in_fail(in, XY_OBJ_CORRUPT, "%s", why);
	if (check_order(prev, *prev_dir, path) < 0)
		return in_fail(in, XY_OBJ_CORRUPT,
			       "\"%s\" out of order after \"%s\"", path, prev);
	if ((size_t)snprintf(full, 2 * PATH_MAX, "%s/%s", root, path) >=
	    2 * PATH_MAX)
		return in_fail(in, XY_OBJ_FAILED, "path too long");
	strcpy(prev, path);
	*prev_dir = type == ENT_DIR;
	if (type == ENT_DIR) {
		if (mkdir(full, 0700) < 0)
			return in_fail(in, xy_object_write_status(errno),
				       "cannot create %s: %s", full,
				       strerror(errno));
		return 0;
	}
	if (type == ENT_FILE)
		return in_le(in, &size, 8) < 0
			       ? -1
			       : recv_file(in, full, (uint32_t)mode, size);
	if (in_str(in, path, XY_MAX_NAME, "link target") < 0)
		return -1;
	if (symlink(path, full) < 0)
		return in_fail(in, xy_object_write_status(errno),
			       "cannot create %s: %s", full, strerror(errno));
	return 0;
}

/* Parses a directory stream into the directory root (already made). */
static int recv_dir(struct in *in, const char *root)
{
	uint8_t magic[DIR_MAGIC_LEN];
	if (in_get(in, magic, sizeof magic) < 0)
		return -1;
	if (memcmp(magic, DIR_MAGIC, DIR_MAGIC_LEN) != 0)
		return in_fail(in, XY_OBJ_CORRUPT, "not a directory stream");
	struct names *nm = calloc(1, sizeof *nm);
	if (!nm)
		return in_fail(in, XY_OBJ_FAILED, "out of memory");
	int rc = 0;
	for (;;) {
		uint64_t type;
		if ((rc = in_le(in, &type, 1)) < 0)
			break;
		if (type == END_MARK)
			break;
		if (type != ENT_FILE && type != ENT_DIR && type != ENT_LINK) {
			rc = in_fail(in, XY_OBJ_CORRUPT, "bad entry type %u",
				     (unsigned)type);
			break;
		}
		if ((rc = recv_entry(in, (int)type, root, nm)) < 0)
			break;
	}
	free(nm);
	return rc;
}

static int recv_body(struct in *in, uint8_t kind, const char *part,
		     int readonly)
{
	if (kind == XY_KIND_FILE)
		/* A file's stream carries no mode. In a cache it is made
		 * executable, so that an input script runs as ./script; a
		 * copy brought back to the manager is a plain 0644 file. */
		return recv_file(in, part, readonly ? 0755 : 0644, in->left);
	if (mkdir(part, 0700) < 0)
		return in_fail(in, xy_object_write_status(errno),
			       "cannot create %s: %s", part, strerror(errno));
	if (recv_dir(in, part) < 0)
		return -1;
	if (chmod(part, 0755) < 0)
		return in_fail(in, XY_OBJ_FAILED, "chmod %s: %s", part,
			       strerror(errno));
	return 0;
}

/* After the body: nothing may be left, and the hash must match. */
static int recv_verify(struct in *in, const uint8_t id[XY_ID_LEN])
{
	if (in->pos != in->len || in->left != 0)
		return in_fail(in, XY_OBJ_CORRUPT,
			       "stream has trailing bytes");
	uint8_t got[XY_ID_LEN];
	unsigned int n = XY_ID_LEN;
	if (EVP_DigestFinal_ex(in->md, got, &n) != 1)
		return in_fail(in, XY_OBJ_FAILED, "cannot finish SHA-256");
	if (memcmp(got, id, XY_ID_LEN) != 0) {
		char want[2 * XY_ID_LEN + 1], have[2 * XY_ID_LEN + 1];
		xy_hex(id, XY_ID_LEN, want);
		xy_hex(got, XY_ID_LEN, have);
		return in_fail(in, XY_OBJ_CORRUPT,
			       "content hashes to %.16s, not %.16s", have,
			       want);
	}
	return 0;
}

/* Verified: makes it read-only if asked, and moves it into place. */
static void finish_recv(struct in *in, const char *part, const char *dest,
			int readonly)
{
	if (readonly && xy_object_make_readonly(part) < 0)
		in_fail(in, XY_OBJ_FAILED, "cannot make %s read-only: %s",
			part, strerror(errno));
	else if (rename(part, dest) < 0)
		in_fail(in, XY_OBJ_FAILED, "cannot rename to %s: %s", dest,
			strerror(errno));
}

/* Materialises the stream at dest through dest.part; see xy_object_recv.
 * The outcome is in in->status. */
static void recv_object(struct in *in, uint8_t kind,
			const uint8_t id[XY_ID_LEN], const char *dest,
			int readonly)
{
	char part[PATH_MAX];
	struct stat st;
	if (kind != XY_KIND_FILE && kind != XY_KIND_DIR) {
		in_fail(in, XY_OBJ_CORRUPT, "bad kind %u", kind);
		return;
	}
	if ((size_t)snprintf(part, sizeof part, "%s.part", dest) >=
	    sizeof part) {
		in_fail(in, XY_OBJ_FAILED, "path too long: %s", dest);
		return;
	}
	if (lstat(dest, &st) == 0) {
		in_fail(in, XY_OBJ_FAILED, "%s exists", dest);
		return;
	}
	/* A part left by a crashed attempt is ours to remove. */
	xy_rm_rf(part);
	in->buf = malloc(IOBUF);
	in->md = EVP_MD_CTX_new();
	if (!in->buf || !in->md ||
	    EVP_DigestInit_ex(in->md, EVP_sha256(), NULL) != 1)
		in_fail(in, XY_OBJ_FAILED, "out of memory");
	else if (recv_body(in, kind, part, readonly) == 0 &&
		 recv_verify(in, id) == 0)
		finish_recv(in, part, dest, readonly);
	if (in->status != XY_OBJ_OK)
		xy_rm_rf(part);
}

int xy_object_recv(int fd, uint8_t kind, uint64_t size,
		   const uint8_t id[XY_ID_LEN], const char *dest, int readonly,
		   int timeout_ms, int *local, char *err, size_t errlen)
{
	struct in in = {.fd = fd, .timeout_ms = timeout_ms, .left = size,
			.err = err, .errlen = errlen};
	recv_object(&in, kind, id, dest, readonly);
	free(in.buf);
	EVP_MD_CTX_free(in.md);
	if (local)
		*local = (in.status == XY_OBJ_FAILED && !in.broken) ||
			 in.status == XY_OBJ_NO_ROOM;
	return in.status;
}

/* An object made by a task under another account (a worker run as root
 * with --task-users) becomes the worker's, so that no task of that
 * account may chmod or write it once it is cached. */
static int own(const char *path, const struct stat *st)
{
	if (st->st_uid == geteuid() || geteuid() != 0)
		return 0;
	return lchown(path, geteuid(), getegid());
}

static int readonly_walk(char *path, size_t len)
{
	struct stat st;
	if (lstat(path, &st) < 0 || own(path, &st) < 0)
		return -1;
	if (S_ISLNK(st.st_mode))
		return 0;
	if (!S_ISDIR(st.st_mode))
		return chmod(path, st.st_mode & 0111 ? 0555 : 0444);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		size_t k = strlen(e->d_name);
		if (len + 1 + k >= 2 * PATH_MAX) {
			errno = ENAMETOOLONG;
			rc = -1;
			break;
		}
		path[len] = '/';
		memcpy(path + len + 1, e->d_name, k + 1);
		rc = readonly_walk(path, len + 1 + k);
		path[len] = 0;
	}
	closedir(d);
	if (rc == 0)
		rc = chmod(path, 0555);
	return rc;
}

int xy_object_make_readonly(const char *path)
{
	size_t len = strlen(path);
	if (len >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	char *buf = malloc(2 * PATH_MAX);
	if (!buf)
		return -1;
	memcpy(buf, path, len + 1);
	int rc = readonly_walk(buf, len);
	int e = errno;
	free(buf);
	errno = e;
	return rc;
}
