/*
 * test_object.c: unit tests for object.h: file and directory streams and
 * ids, and receiving streams, good and hostile.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "harness.h"
#include "object.h"
#include "util.h"

static void put_file(const char *rel, const char *content, mode_t mode)
{
	const char *p = xy_test_path(rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
	XY_CHECK(fd >= 0);
	XY_CHECK_EQ(write(fd, content, strlen(content)), strlen(content));
	close(fd);
	chmod(p, mode);
}

static char *get_file(const char *path)
{
	size_t n;
	char *s = xy_read_file(path, 1 << 26, &n);
	XY_CHECK(s);
	return s;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned len = 32;
	XY_CHECK_EQ(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
}

static int buf_sink(void *arg, const void *p, size_t n)
{
	xy_buf_put_raw(arg, p, n);
	return 0;
}

/* The stream of path, in memory. */
static void stream_of(const char *path, uint8_t kind, struct xy_buf *b)
{
	char err[256];
	xy_buf_init(b);
	XY_CHECK_EQ(xy_object_stream(path, kind, buf_sink, b, -1, err,
				     sizeof err), 0);
}

/* Receives the bytes b from a file descriptor into dest. */
static int recv_bytes(const void *p, size_t n, uint64_t size, uint8_t kind,
		      const uint8_t id[32], const char *dest, char *err,
		      size_t errlen)
{
	const char *src = xy_test_path("stream.bin");
	int fd = open(src, O_RDWR | O_CREAT | O_TRUNC, 0600);
	XY_CHECK(fd >= 0);
	XY_CHECK_EQ(write(fd, p, n), n);
	lseek(fd, 0, SEEK_SET);
	int st = xy_object_recv(fd, kind, size, id, dest, 1, 2000, NULL, err,
				errlen);
	close(fd);
	unlink(src);
	return st;
}

static void assert_absent(const char *dest)
{
	char part[4200];
	struct stat st;
	snprintf(part, sizeof part, "%s.part", dest);
	XY_CHECK(lstat(dest, &st) < 0 && errno == ENOENT);
	XY_CHECK(lstat(part, &st) < 0 && errno == ENOENT);
}

static void make_tree(void)
{
	XY_CHECK_EQ(xy_mkdir_p(xy_test_path("tree/sub/deep")), 0);
	XY_CHECK_EQ(xy_mkdir_p(xy_test_path("tree/empty")), 0);
	put_file("tree/b.txt", "bee", 0644);
	put_file("tree/a.sh", "#!/bin/sh\necho a\n", 0755);
	put_file("tree/sub/deep/z", "", 0600);
	put_file("tree/sub-x", "sibling sorting after sub/", 0644);
	XY_CHECK_EQ(symlink("../b.txt", xy_test_path("tree/sub/link")), 0);
}

static void t_file_hash(void)
{
	put_file("f", "hello", 0644);
	uint8_t id[32], id2[32], want[32];
	uint8_t kind = 9;
	uint64_t size = 0;
	char err[256];
	XY_CHECK_EQ(xy_object_hash(xy_test_path("f"), id, &kind, &size, err,
				   sizeof err), 0);
	XY_CHECK_EQ(kind, XY_KIND_FILE);
	XY_CHECK_EQ(size, 5);
	sha256("hello", 5, want);
	XY_CHECK(!memcmp(id, want, 32));
	/* Mode does not matter for a file, content does. */
	chmod(xy_test_path("f"), 0400);
	XY_CHECK_EQ(xy_object_hash(xy_test_path("f"), id2, NULL, NULL, err,
				   sizeof err), 0);
	XY_CHECK(!memcmp(id, id2, 32));
	put_file("f", "hellO", 0644);
	XY_CHECK_EQ(xy_object_hash(xy_test_path("f"), id2, NULL, NULL, err,
				   sizeof err), 0);
	XY_CHECK(memcmp(id, id2, 32) != 0);
	/* A symlink at the top is followed. */
	XY_CHECK_EQ(symlink(xy_test_path("f"), xy_test_path("lf")), 0);
	uint8_t id3[32];
	XY_CHECK_EQ(xy_object_hash(xy_test_path("lf"), id3, &kind, &size, err,
				   sizeof err), 0);
	XY_CHECK(!memcmp(id2, id3, 32));
	XY_CHECK_EQ(kind, XY_KIND_FILE);
	XY_CHECK_EQ(xy_object_hash(xy_test_path("missing"), id2, NULL, NULL, err,
				   sizeof err), -1);
	XY_CHECK(strstr(err, "missing"));
}

static void t_dir_stream_layout(void)
{
	XY_CHECK_EQ(xy_mkdir_p(xy_test_path("d")), 0);
	put_file("d/a", "x", 0600);
	struct xy_buf b, w;
	stream_of(xy_test_path("d"), XY_KIND_DIR, &b);
	xy_buf_init(&w);
	xy_buf_put_raw(&w, "XYDIR1\0\0", 8);
	xy_buf_put_u8(&w, 1);
	xy_buf_put_u32(&w, 0644);
	xy_buf_put_str(&w, "a");
	xy_buf_put_u64(&w, 1);
	xy_buf_put_raw(&w, "x", 1);
	xy_buf_put_u8(&w, 0xff);
	XY_CHECK_EQ(b.len, w.len);
	XY_CHECK(!memcmp(b.data, w.data, b.len));
	xy_buf_free(&b);
	xy_buf_free(&w);
}

/* Finds the offsets of the entry paths in a stream, to check order. */
static void t_dir_order(void)
{
	make_tree();
	struct xy_buf b;
	stream_of(xy_test_path("tree"), XY_KIND_DIR, &b);
	static const char *order[] = {"a.sh", "b.txt", "empty", "sub",
				      "sub/deep", "sub/deep/z", "sub/link",
				      "sub-x"};
	size_t last = 0;
	for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
		/* Search for u32 length + path as it appears on the wire. */
		struct xy_buf needle;
		xy_buf_init(&needle);
		xy_buf_put_str(&needle, order[i]);
		void *at = memmem(b.data + last, b.len - last, needle.data,
				  needle.len);
		XY_CHECK(at != NULL);
		last = (size_t)((uint8_t *)at - b.data) + needle.len;
		xy_buf_free(&needle);
	}
	XY_CHECK_EQ(b.data[b.len - 1], 0xff);
	uint8_t kind;
	uint64_t size;
	char err[256];
	XY_CHECK_EQ(xy_object_stat(xy_test_path("tree"), &kind, &size, err,
				   sizeof err), 0);
	XY_CHECK_EQ(kind, XY_KIND_DIR);
	XY_CHECK_EQ(size, b.len);
	xy_buf_free(&b);
}

static void t_dir_hash_stable(void)
{
	make_tree();
	uint8_t id[32], id2[32], want[32];
	uint64_t size;
	uint8_t kind;
	char err[256];
	XY_CHECK_EQ(xy_object_hash(xy_test_path("tree"), id, &kind, &size, err,
				   sizeof err), 0);
	XY_CHECK_EQ(kind, XY_KIND_DIR);
	struct xy_buf b;
	stream_of(xy_test_path("tree"), XY_KIND_DIR, &b);
	sha256(b.data, b.len, want);
	XY_CHECK(!memcmp(id, want, 32));
	XY_CHECK_EQ(size, b.len);
	xy_buf_free(&b);
	/* Read-only copies and other umasks hash the same. */
	XY_CHECK_EQ(xy_object_make_readonly(xy_test_path("tree")), 0);
	struct stat st;
	XY_CHECK_EQ(stat(xy_test_path("tree/a.sh"), &st), 0);
	XY_CHECK_EQ(st.st_mode & 0777, 0555);
	XY_CHECK_EQ(stat(xy_test_path("tree/b.txt"), &st), 0);
	XY_CHECK_EQ(st.st_mode & 0777, 0444);
	XY_CHECK_EQ(stat(xy_test_path("tree/sub"), &st), 0);
	XY_CHECK_EQ(st.st_mode & 0777, 0555);
	XY_CHECK_EQ(xy_object_hash(xy_test_path("tree"), id2, NULL, NULL, err,
				   sizeof err), 0);
	XY_CHECK(!memcmp(id, id2, 32));
	/* The executable bit is part of the id. */
	chmod(xy_test_path("tree/b.txt"), 0544);
	XY_CHECK_EQ(xy_object_hash(xy_test_path("tree"), id2, NULL, NULL, err,
				   sizeof err), 0);
	XY_CHECK(memcmp(id, id2, 32) != 0);
	/* A symlink at the top is followed. */
	chmod(xy_test_path("tree/b.txt"), 0444);
	XY_CHECK_EQ(symlink(xy_test_path("tree"), xy_test_path("alias")), 0);
	XY_CHECK_EQ(xy_object_hash(xy_test_path("alias"), id2, NULL, NULL, err,
				   sizeof err), 0);
	XY_CHECK(!memcmp(id, id2, 32));
	/* A fifo cannot be part of an object. */
	chmod(xy_test_path("tree"), 0755);
	XY_CHECK_EQ(mkfifo(xy_test_path("tree/fifo"), 0644), 0);
	XY_CHECK_EQ(xy_object_hash(xy_test_path("tree"), id2, NULL, NULL, err,
				   sizeof err), -1);
	xy_test_check_no_leaks();
}

static void t_recv_file(void)
{
	put_file("f", "some content\n", 0644);
	uint8_t id[32];
	uint64_t size;
	char err[256];
	XY_CHECK_EQ(xy_object_hash(xy_test_path("f"), id, NULL, &size, err,
				   sizeof err), 0);
	const char *dest = xy_test_path("got");
	XY_CHECK_EQ(recv_bytes("some content\n", 13, size, XY_KIND_FILE, id,
			       dest, err, sizeof err), XY_OBJ_OK);
	char *s = get_file(dest);
	XY_CHECK(!strcmp(s, "some content\n"));
	free(s);
	struct stat st;
	XY_CHECK_EQ(stat(dest, &st), 0);
	XY_CHECK_EQ(st.st_mode & 0777, 0555); /* a cached plain file runs as ./file */
	/* dest exists now: refused, and left alone. */
	XY_CHECK_EQ(recv_bytes("some content\n", 13, size, XY_KIND_FILE, id,
			       dest, err, sizeof err), XY_OBJ_FAILED);
	XY_CHECK(strstr(err, "exists"));
	XY_CHECK_EQ(stat(dest, &st), 0);
}

static void t_recv_dir(void)
{
	make_tree();
	uint8_t id[32], id2[32];
	uint64_t size;
	char err[256];
	XY_CHECK_EQ(xy_object_hash(xy_test_path("tree"), id, NULL, &size, err,
				   sizeof err), 0);
	struct xy_buf b;
	stream_of(xy_test_path("tree"), XY_KIND_DIR, &b);
	const char *dest = xy_test_path("copy");
	XY_CHECK_EQ(recv_bytes(b.data, b.len, size, XY_KIND_DIR, id, dest, err,
			       sizeof err), XY_OBJ_OK);
	xy_buf_free(&b);
	char *s = get_file(xy_test_path("copy/sub/link"));
	XY_CHECK(!strcmp(s, "bee"));
	free(s);
	char target[64] = "";
	XY_CHECK(readlink(xy_test_path("copy/sub/link"), target, sizeof target) > 0);
	XY_CHECK(!strcmp(target, "../b.txt"));
	struct stat st;
	XY_CHECK_EQ(stat(xy_test_path("copy/a.sh"), &st), 0);
	XY_CHECK_EQ(st.st_mode & 0777, 0555);
	XY_CHECK_EQ(stat(xy_test_path("copy/b.txt"), &st), 0);
	XY_CHECK_EQ(st.st_mode & 0777, 0444);
	XY_CHECK_EQ(stat(xy_test_path("copy/empty"), &st), 0);
	XY_CHECK(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0555);
	XY_CHECK_EQ(xy_object_hash(dest, id2, NULL, NULL, err, sizeof err), 0);
	XY_CHECK(!memcmp(id, id2, 32));
	XY_CHECK(access(xy_test_path("copy.part"), F_OK) < 0);
	xy_test_check_no_leaks();
}

static void t_corrupt_byte(void)
{
	make_tree();
	uint8_t id[32];
	uint64_t size;
	char err[256];
	XY_CHECK_EQ(xy_object_hash(xy_test_path("tree"), id, NULL, &size, err,
				   sizeof err), 0);
	struct xy_buf b;
	stream_of(xy_test_path("tree"), XY_KIND_DIR, &b);
	/* Flip a byte of file content ("bee" -> "bEe"). */
	uint8_t *p = memmem(b.data, b.len, "bee", 3);
	XY_CHECK(p);
	p[1] = 'E';
	const char *dest = xy_test_path("copy");
	XY_CHECK_EQ(recv_bytes(b.data, b.len, size, XY_KIND_DIR, id, dest, err,
			       sizeof err), XY_OBJ_CORRUPT);
	XY_CHECK(strstr(err, "hashes to"));
	assert_absent(dest);
	xy_buf_free(&b);

	/* The same for a plain file. */
	put_file("f", "0123456789", 0644);
	XY_CHECK_EQ(xy_object_hash(xy_test_path("f"), id, NULL, &size, err,
				   sizeof err), 0);
	XY_CHECK_EQ(recv_bytes("0123456788", 10, 10, XY_KIND_FILE, id, dest,
			       err, sizeof err), XY_OBJ_CORRUPT);
	assert_absent(dest);
	/* Short stream (the source ends early): FAILED, nothing left. */
	XY_CHECK_EQ(recv_bytes("01234", 5, 10, XY_KIND_FILE, id, dest, err,
			       sizeof err), XY_OBJ_FAILED);
	assert_absent(dest);
	xy_test_check_no_leaks();
}

/* A hand-made directory stream from (type, path, content) triples. Its
 * id is its true SHA-256, so only the structure checks can refuse it. */
struct ent {
	int type;
	const char *path;
	const char *data; /* file content or link target */
};

static void hostile(const struct ent *e, size_t n, const char *why)
{
	struct xy_buf b;
	xy_buf_init(&b);
	xy_buf_put_raw(&b, "XYDIR1\0\0", 8);
	for (size_t i = 0; i < n; i++) {
		xy_buf_put_u8(&b, (uint8_t)e[i].type);
		xy_buf_put_u32(&b, 0755);
		xy_buf_put_str(&b, e[i].path);
		if (e[i].type == 1) {
			xy_buf_put_u64(&b, strlen(e[i].data));
			xy_buf_put_raw(&b, e[i].data, strlen(e[i].data));
		} else if (e[i].type == 3) {
			xy_buf_put_str(&b, e[i].data);
		}
	}
	xy_buf_put_u8(&b, 0xff);
	uint8_t id[32];
	sha256(b.data, b.len, id);
	char err[256] = "";
	XY_CHECK_EQ(xy_mkdir_p(xy_test_path("in")), 0);
	const char *dest = xy_test_path("in/obj");
	XY_CHECK_EQ(recv_bytes(b.data, b.len, b.len, XY_KIND_DIR, id, dest,
			       err, sizeof err), XY_OBJ_CORRUPT);
	XY_CHECK(strstr(err, why));
	assert_absent(dest);
	xy_buf_free(&b);
}

/* Receives size bytes of stream from the file src into dest; *local
 * says whose failure it was. */
static int recv_from(const char *src, uint64_t size, const uint8_t id[32],
		     const char *dest, int *local, char *err, size_t errlen)
{
	int fd = open(src, O_RDONLY);
	XY_CHECK(fd >= 0);
	int st = xy_object_recv(fd, XY_KIND_FILE, size, id, dest, 1, 2000,
				local, err, errlen);
	close(fd);
	return st;
}

/* Whose failure: this host's when it cannot write (a full disk, played
 * here by a file size limit), the stream's when it ends early or does
 * not match. */
static void t_recv_local_failure(void)
{
	size_t n = 256 * 1024;
	char *data = malloc(n), err[512];
	uint8_t id[32];
	int local = -1;
	XY_CHECK(data);
	memset(data, 'x', n);
	const char *src = xy_test_path("src");
	int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	XY_CHECK_EQ(write(fd, data, n), (ssize_t)n);
	close(fd);
	sha256(data, n, id);
	/* The stream ends early: its fault. */
	XY_CHECK_EQ(recv_from(src, n + 1, id, xy_test_path("a"), &local, err,
			      sizeof err), XY_OBJ_FAILED);
	XY_CHECK_EQ(local, 0);
	assert_absent(xy_test_path("a"));
	/* Another object's bytes: its fault. */
	id[0] ^= 1;
	XY_CHECK_EQ(recv_from(src, n, id, xy_test_path("b"), &local, err,
			      sizeof err), XY_OBJ_CORRUPT);
	XY_CHECK_EQ(local, 0);
	id[0] ^= 1;
	/* No room to write (a file size limit plays the full disk): ours,
	 * NO_ROOM, with the errno and the path. */
	struct rlimit rl = {64 * 1024, RLIM_INFINITY};
	signal(SIGXFSZ, SIG_IGN);
	XY_CHECK_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
	XY_CHECK_EQ(recv_from(src, n, id, xy_test_path("c"), &local, err,
			      sizeof err), XY_OBJ_NO_ROOM);
	XY_CHECK_EQ(local, 1);
	XY_CHECK(strstr(err, "cannot write") && strstr(err, "c.part"));
	XY_CHECK(strstr(err, strerror(EFBIG)));
	assert_absent(xy_test_path("c"));
	/* Nowhere to write: ours too. */
	XY_CHECK_EQ(recv_from(src, n, id, xy_test_path("none/d"), &local, err,
			      sizeof err), XY_OBJ_FAILED);
	XY_CHECK_EQ(local, 1);
	free(data);
	xy_test_check_no_leaks();
}

static void t_hostile_dir_streams(void)
{
	XY_CHECK_EQ(xy_mkdir_p(xy_test_path("outside")), 0);
	/* A path that climbs out. */
	struct ent up[] = {{1, "../x", "pwned"}};
	hostile(up, 1, "\"../x\"");
	XY_CHECK(access(xy_test_path("in/x"), F_OK) < 0);
	struct ent abs[] = {{1, "/tmp/x", "pwned"}};
	hostile(abs, 1, "absolute");
	/* A file written through a symlink the stream itself made. */
	struct ent via_link[] = {{3, "a", xy_test_path("outside")},
				 {1, "a/evil", "pwned"}};
	hostile(via_link, 2, "out of order");
	XY_CHECK(access(xy_test_path("outside/evil"), F_OK) < 0);
	/* Out of order, duplicates, a child before its parent, a child of
	 * a file. */
	struct ent order[] = {{1, "b", "1"}, {1, "a", "2"}};
	hostile(order, 2, "out of order");
	struct ent dup[] = {{2, "a", NULL}, {2, "a", NULL}};
	hostile(dup, 2, "out of order");
	struct ent orphan[] = {{1, "a/b", "x"}};
	hostile(orphan, 1, "out of order");
	struct ent under_file[] = {{1, "a", "x"}, {1, "a/b", "y"}};
	hostile(under_file, 2, "out of order");
	struct ent left_dir[] = {{2, "a", NULL}, {1, "ab", "1"},
				 {1, "a/c", "2"}};
	hostile(left_dir, 3, "out of order");
	xy_test_check_no_leaks();
}

static void t_malformed_streams(void)
{
	char err[256];
	uint8_t id[32];
	const char *dest = xy_test_path("obj");
	/* Bad magic. */
	sha256("XYDIR2\0\0\xff", 9, id);
	XY_CHECK_EQ(recv_bytes("XYDIR2\0\0\xff", 9, 9, XY_KIND_DIR, id, dest,
			       err, sizeof err), XY_OBJ_CORRUPT);
	assert_absent(dest);
	/* Bad entry type. */
	sha256("XYDIR1\0\0\x07", 9, id);
	XY_CHECK_EQ(recv_bytes("XYDIR1\0\0\x07", 9, 9, XY_KIND_DIR, id, dest,
			       err, sizeof err), XY_OBJ_CORRUPT);
	XY_CHECK(strstr(err, "entry type"));
	/* No end mark within the size. */
	XY_CHECK_EQ(recv_bytes("XYDIR1\0\0", 8, 8, XY_KIND_DIR, id, dest, err,
			       sizeof err), XY_OBJ_CORRUPT);
	XY_CHECK(strstr(err, "early"));
	/* Bytes after the end mark, within the size. */
	XY_CHECK_EQ(recv_bytes("XYDIR1\0\0\xff\x00", 10, 10, XY_KIND_DIR, id,
			       dest, err, sizeof err), XY_OBJ_CORRUPT);
	XY_CHECK(strstr(err, "trailing"));
	/* An empty directory is a valid object. */
	sha256("XYDIR1\0\0\xff", 9, id);
	XY_CHECK_EQ(recv_bytes("XYDIR1\0\0\xff", 9, 9, XY_KIND_DIR, id, dest,
			       err, sizeof err), XY_OBJ_OK);
	/* Unknown kind. */
	XY_CHECK_EQ(recv_bytes("x", 1, 1, 7, id, xy_test_path("k"), err, sizeof err),
		    XY_OBJ_CORRUPT);
	xy_test_check_no_leaks();
}

struct sender {
	const char *path;
	int fd;
	int rc;
};

static void *send_thread(void *arg)
{
	struct sender *s = arg;
	char err[256];
	s->rc = xy_object_stream(s->path, XY_KIND_FILE, NULL, NULL, s->fd, err,
				 sizeof err);
	return NULL;
}

static void t_sendfile_over_socket(void)
{
	/* Several receive buffers' worth, through sendfile. */
	size_t n = 3 * 1000 * 1000 + 7;
	char *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 7 + i / 1000);
	int fd = open(xy_test_path("big"), O_WRONLY | O_CREAT, 0644);
	XY_CHECK_EQ(write(fd, data, n), n);
	close(fd);
	uint8_t id[32];
	uint64_t size;
	char err[256];
	XY_CHECK_EQ(xy_object_hash(xy_test_path("big"), id, NULL, &size, err,
				   sizeof err), 0);
	XY_CHECK_EQ(size, n);
	int sv[2];
	XY_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct sender s = {xy_test_path("big"), sv[0], -1};
	pthread_t th;
	pthread_create(&th, NULL, send_thread, &s);
	XY_CHECK_EQ(xy_object_recv(sv[1], XY_KIND_FILE, size, id,
				   xy_test_path("big.copy"), 0, 5000, NULL, err,
				   sizeof err),
		    XY_OBJ_OK);
	pthread_join(th, NULL);
	XY_CHECK_EQ(s.rc, 0);
	size_t got;
	char *copy = xy_read_file(xy_test_path("big.copy"), n + 1, &got);
	XY_CHECK(copy && got == n && !memcmp(copy, data, n));
	free(copy);
	free(data);
	xy_test_check_no_leaks();
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_file_hash),
		XY_TEST(t_dir_stream_layout),
		XY_TEST(t_dir_order),
		XY_TEST(t_dir_hash_stable),
		XY_TEST(t_recv_file),
		XY_TEST(t_recv_dir),
		XY_TEST(t_corrupt_byte),
		XY_TEST(t_recv_local_failure),
		XY_TEST(t_hostile_dir_streams),
		XY_TEST(t_malformed_streams),
		XY_TEST(t_sendfile_over_socket),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
