/*
 * test_xchunk.c: the chunked fetch (xchunk.c) and the server's ranged and
 * partial GETs (xfer.c), on loopback: chunk lists, failover from a dead,
 * corrupting or failing source from the first unverified chunk, a relay
 * serving an object while it still receives it, token binding and
 * replay, and a receiver that cannot write (blaming no source).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "harness.h"
#include "object.h"
#include "util.h"
#include "xfer.h"

#define CHUNK XY_CHUNK_MIN /* one standard chunk */

static const char secret[] = "chunk secret";

/* The one object the servers hold (a path), or none. */
struct holder {
	char path[4096];
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint64_t size;
	struct xy_chunks chunks;
	int have;
};

static int lookup(void *arg, const uint8_t id[XY_ID_LEN], char *path,
		  size_t pathlen, uint8_t *kind)
{
	struct holder *h = arg;
	if (!h->have || memcmp(id, h->id, XY_ID_LEN))
		return -1;
	snprintf(path, pathlen, "%s", h->path);
	*kind = h->kind;
	return 0;
}

/* Writes a file of size pseudo-random bytes and hashes it. */
static void make_object(struct holder *h, const char *rel, uint64_t size)
{
	char err[256];
	snprintf(h->path, sizeof h->path, "%s", xy_test_path(rel));
	int fd = open(h->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	XY_CHECK(fd >= 0);
	uint8_t *b = malloc(CHUNK);
	uint32_t x = 12345;
	for (uint64_t off = 0; off < size; off += CHUNK) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			b[i] = (uint8_t)(x >> 16);
		}
		XY_CHECK_EQ(write(fd, b, n), (ssize_t)n);
	}
	free(b);
	close(fd);
	XY_CHECK_EQ(xy_object_hash_chunks(h->path, h->id, &h->kind, &h->size,
					  &h->chunks, err, sizeof err), 0);
	h->have = 1;
}

static struct xy_xfer_server *serve(struct holder *h)
{
	char err[256];
	struct xy_xfer_server *s = xy_xfer_server_start(
		"127.0.0.1", 0, secret, strlen(secret), lookup, h, err,
		sizeof err);
	XY_CHECK(s != NULL);
	return s;
}

static uint64_t expiry(void)
{
	static uint64_t n;
	return ((uint64_t)time(NULL) + 60) * 1000000ull + ++n;
}

struct fetch_args {
	struct xy_xfer_spec sp;
	struct xy_source src[XY_MAX_SOURCES];
	uint8_t token[XY_TOKEN_LEN];
	uint64_t verified;
	char err[512];
};

static void spec(struct fetch_args *a, const struct holder *h,
		 const char *dest, struct xy_xfer_server *mine)
{
	memset(a, 0, sizeof *a);
	xy_token_make(secret, strlen(secret), h->id, expiry(), "r1", a->token);
	a->sp = (struct xy_xfer_spec){
		.secret = secret, .secret_len = strlen(secret), .id = h->id,
		.kind = h->kind, .size = h->size, .chunks = &h->chunks,
		.sources = a->src, .token = a->token, .name = "r1",
		.dest = xy_test_path(dest), .readonly = 1, .server = mine};
}

static void add_source(struct fetch_args *a, int port, int partial)
{
	a->src[a->sp.n_sources++] = (struct xy_source){"127.0.0.1",
						       (uint16_t)port, partial};
}

static int run(struct fetch_args *a)
{
	struct xy_xfer_partial *pub = NULL;
	int st = xy_xfer_fetch_chunks(&a->sp, &pub, &a->verified, a->err,
				      sizeof a->err);
	xy_xfer_partial_end(pub, st == XY_OBJ_OK);
	return st;
}

static void check_same(const char *a, const char *b)
{
	uint8_t ia[XY_ID_LEN], ib[XY_ID_LEN];
	char err[256];
	XY_CHECK_EQ(xy_object_hash(a, ia, NULL, NULL, err, sizeof err), 0);
	XY_CHECK_EQ(xy_object_hash(b, ib, NULL, NULL, err, sizeof err), 0);
	XY_CHECK(!memcmp(ia, ib, XY_ID_LEN));
}

static void t_chunk_list(void)
{
	struct holder h = {0};
	make_object(&h, "small", CHUNK);
	XY_CHECK_EQ(h.chunks.n, 0); /* one chunk: no list */
	make_object(&h, "big", 3 * CHUNK + 5);
	XY_CHECK_EQ(h.chunks.n, 4);
	XY_CHECK_EQ(h.chunks.chunk_size, CHUNK);
	free(h.chunks.hash);
	xy_test_check_no_leaks();
}

static void t_fetch_and_resume_offset(void)
{
	struct holder h = {0};
	make_object(&h, "obj", 3 * CHUNK + 77);
	struct xy_xfer_server *a = serve(&h);
	struct fetch_args f;
	spec(&f, &h, "got", NULL);
	add_source(&f, xy_xfer_server_port(a), 0);
	XY_CHECK_EQ(run(&f), XY_OBJ_OK);
	XY_CHECK_EQ(f.verified, h.size);
	check_same(h.path, xy_test_path("got"));
	struct stat st;
	XY_CHECK_EQ(stat(xy_test_path("got"), &st), 0);
	XY_CHECK_EQ(st.st_mode & 0777, 0555);
	XY_CHECK(access(xy_test_path("got.stream"), F_OK) < 0);
	xy_xfer_server_stop(a);
	free(h.chunks.hash);
	xy_test_check_no_leaks();
}

/* A dead source, then one that corrupts chunk 1 every time, then a good
 * one: the fetch ends OK from the third. */
static void t_failover(void)
{
	struct holder h = {0};
	make_object(&h, "obj", 4 * CHUNK);
	struct xy_xfer_server *dead = serve(&h), *bad = serve(&h),
			      *good = serve(&h);
	int dead_port = xy_xfer_server_port(dead);
	xy_xfer_server_stop(dead);
	xy_xfer_server_corrupt(bad, CHUNK + 10);
	struct fetch_args f;
	uint8_t blame[XY_MAX_SOURCES] = {0};
	spec(&f, &h, "got", NULL);
	f.sp.blame = blame;
	add_source(&f, dead_port, 0);
	add_source(&f, xy_xfer_server_port(bad), 0);
	add_source(&f, xy_xfer_server_port(good), 0);
	XY_CHECK_EQ(run(&f), XY_OBJ_OK);
	check_same(h.path, xy_test_path("got"));
	/* Each failed source is blamed: the dead one's host, the bad one's
	 * copy; not the one that delivered. */
	XY_CHECK_EQ(blame[0], XY_BLAME_HOST);
	XY_CHECK_EQ(blame[1], XY_BLAME_OBJECT);
	XY_CHECK_EQ(blame[2], XY_BLAME_NONE);
	/* The bad source sent chunk 0 and the bad chunk 1, then chunk 1
	 * again; the good one only from chunk 1 on. */
	uint64_t t0 = xy_mono_us();
	while (xy_xfer_server_bytes_sent(good) != 3 * CHUNK &&
	       xy_mono_us() - t0 < 2000000)
		usleep(1000);
	XY_CHECK_EQ(xy_xfer_server_bytes_sent(good), 3 * CHUNK);
	/* With the bad source alone: CORRUPT, nothing left behind. */
	spec(&f, &h, "got2", NULL);
	add_source(&f, xy_xfer_server_port(bad), 0);
	XY_CHECK_EQ(run(&f), XY_OBJ_CORRUPT);
	XY_CHECK(strstr(f.err, "corrupt"));
	XY_CHECK_EQ(f.verified, CHUNK);
	XY_CHECK(access(xy_test_path("got2"), F_OK) < 0);
	XY_CHECK(access(xy_test_path("got2.stream"), F_OK) < 0);
	xy_xfer_server_stop(bad);
	xy_xfer_server_stop(good);
	free(h.chunks.hash);
	xy_test_check_no_leaks();
}

/* A receiver whose disk is full (played by a file size limit) fails on
 * its own side: it blames no source, tries no other, and leaves nothing
 * behind; whole (one chunk) or chunked. */
static void t_local_failure(void)
{
	struct holder h = {0}, one = {0};
	make_object(&h, "obj", 4 * CHUNK);
	make_object(&one, "one", CHUNK);
	struct xy_xfer_server *a = serve(&h), *b = serve(&h),
			      *c = serve(&one);
	struct rlimit rl = {CHUNK + CHUNK / 2, RLIM_INFINITY};
	signal(SIGXFSZ, SIG_IGN);
	XY_CHECK_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
	struct fetch_args f;
	uint8_t blame[XY_MAX_SOURCES] = {0};
	spec(&f, &h, "got", NULL);
	f.sp.blame = blame;
	add_source(&f, xy_xfer_server_port(a), 0);
	add_source(&f, xy_xfer_server_port(b), 0);
	XY_CHECK_EQ(run(&f), XY_OBJ_NO_ROOM);
	XY_CHECK(strstr(f.err, "cannot write chunk 1 to disk"));
	XY_CHECK(strstr(f.err, strerror(EFBIG)));
	XY_CHECK(!strstr(f.err, "source"));
	XY_CHECK_EQ(blame[0], XY_BLAME_NONE);
	XY_CHECK_EQ(blame[1], XY_BLAME_NONE);
	XY_CHECK_EQ(f.verified, CHUNK);
	XY_CHECK_EQ(xy_xfer_server_bytes_sent(b), 0);
	XY_CHECK(access(xy_test_path("got"), F_OK) < 0);
	XY_CHECK(access(xy_test_path("got.stream"), F_OK) < 0);
	/* Whole: the same, through xy_xfer_fetch_blame. */
	rl.rlim_cur = CHUNK / 2;
	XY_CHECK_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
	uint8_t tok[XY_TOKEN_LEN], who = 9;
	uint64_t bytes;
	char err[512];
	xy_token_make(secret, strlen(secret), one.id, expiry(), "r1", tok);
	XY_CHECK_EQ(xy_xfer_fetch_blame("127.0.0.1", xy_xfer_server_port(c),
					secret, strlen(secret), 0, one.id, tok,
					"r1", xy_test_path("got1"), 1, &bytes,
					&who, err, sizeof err),
		    XY_OBJ_NO_ROOM);
	XY_CHECK_EQ(who, XY_BLAME_NONE);
	XY_CHECK(strstr(err, "cannot write") && strstr(err, strerror(EFBIG)));
	XY_CHECK(access(xy_test_path("got1.part"), F_OK) < 0);
	xy_xfer_server_stop(a);
	xy_xfer_server_stop(b);
	xy_xfer_server_stop(c);
	free(h.chunks.hash);
	free(one.chunks.hash);
	xy_test_check_no_leaks();
}

/* A relay that publishes an object chunk by chunk, as a fetch thread
 * would, and fails or finishes. */
struct relay {
	struct xy_xfer_server *s;
	struct holder *h;
	int fail_after; /* chunks; -1: finish */
	int half;       /* serve half of the next chunk before failing */
};

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	int in = open(r->h->path, O_RDONLY);
	int fd = open(xy_test_path("relay.stream"), O_RDWR | O_CREAT | O_TRUNC,
		      0600);
	struct xy_xfer_partial *p = xy_xfer_partial_begin(
		r->s, r->h->id, r->h->kind, r->h->size, fd);
	uint8_t *b = malloc(CHUNK);
	uint64_t done = 0;
	for (uint32_t k = 0; k < r->h->chunks.n; k++) {
		if ((int)k == r->fail_after && r->half) {
			ssize_t n = pread(in, b, CHUNK / 2, (off_t)done);
			XY_CHECK_EQ(pwrite(fd, b, (size_t)n, (off_t)done), n);
			xy_xfer_partial_progress(p, done + CHUNK / 2);
			usleep(300000);
		}
		if ((int)k == r->fail_after)
			break;
		ssize_t n = pread(in, b, CHUNK, (off_t)done);
		XY_CHECK(n > 0);
		XY_CHECK_EQ(pwrite(fd, b, (size_t)n, (off_t)done), n);
		done += (uint64_t)n;
		usleep(50000);
		xy_xfer_partial_progress(p, done);
	}
	xy_xfer_partial_end(p, r->fail_after < 0);
	free(b);
	close(fd);
	close(in);
	return NULL;
}

static void t_partial_relay(void)
{
	struct holder h = {0}, none = {0};
	make_object(&h, "obj", 4 * CHUNK + 3);
	struct xy_xfer_server *origin = serve(&h), *rs = serve(&none);
	struct relay r = {rs, &h, -1, 0};
	pthread_t th;
	/* The successor asks first: the relay's object appears later. */
	struct fetch_args f;
	spec(&f, &h, "got", NULL);
	add_source(&f, xy_xfer_server_port(rs), 1);
	XY_CHECK_EQ(pthread_create(&th, NULL, relay_main, &r), 0);
	XY_CHECK_EQ(run(&f), XY_OBJ_OK);
	pthread_join(th, NULL);
	check_same(h.path, xy_test_path("got"));
	XY_CHECK_EQ(xy_xfer_server_bytes_sent(origin), 0);
	/* The relay dies after 2 chunks: the rest comes from the origin. */
	r.fail_after = 2;
	spec(&f, &h, "got2", NULL);
	add_source(&f, xy_xfer_server_port(rs), 1);
	add_source(&f, xy_xfer_server_port(origin), 0);
	XY_CHECK_EQ(pthread_create(&th, NULL, relay_main, &r), 0);
	XY_CHECK_EQ(run(&f), XY_OBJ_OK);
	pthread_join(th, NULL);
	check_same(h.path, xy_test_path("got2"));
	/* From the first unverified chunk: 2 if the successor had read
	 * both before the relay failed, else 1. */
	uint64_t sent, t0 = xy_mono_us();
	while ((sent = xy_xfer_server_bytes_sent(origin)) != h.size - 2 * CHUNK &&
	       sent != h.size - CHUNK && xy_mono_us() - t0 < 2000000)
		usleep(1000);
	XY_CHECK(sent == h.size - 2 * CHUNK || sent == h.size - CHUNK);
	/* The relay dies in the middle of a chunk: that chunk is taken
	 * again, whole, from the origin. */
	r.half = 1;
	spec(&f, &h, "got4", NULL);
	add_source(&f, xy_xfer_server_port(rs), 1);
	add_source(&f, xy_xfer_server_port(origin), 0);
	XY_CHECK_EQ(pthread_create(&th, NULL, relay_main, &r), 0);
	XY_CHECK_EQ(run(&f), XY_OBJ_OK);
	pthread_join(th, NULL);
	check_same(h.path, xy_test_path("got4"));
	/* Without PARTIAL, a server that only receives has nothing. */
	spec(&f, &h, "got3", NULL);
	add_source(&f, xy_xfer_server_port(rs), 0);
	XY_CHECK_EQ(run(&f), XY_OBJ_NOT_FOUND);
	xy_xfer_server_stop(origin);
	xy_xfer_server_stop(rs);
	free(h.chunks.hash);
	xy_test_check_no_leaks();
}

/* A chain: r1 fetches from the origin and publishes on its own server;
 * r2 reads from r1 while r1 receives. */
struct chain_arg {
	struct fetch_args f;
	int st;
};

static void *chain_main(void *arg)
{
	struct chain_arg *c = arg;
	c->st = run(&c->f);
	return NULL;
}

static void t_chain(void)
{
	struct holder h = {0}, none = {0};
	make_object(&h, "obj", 6 * CHUNK);
	struct xy_xfer_server *origin = serve(&h), *s1 = serve(&none);
	struct chain_arg c1, c2;
	spec(&c1.f, &h, "r1", s1);
	add_source(&c1.f, xy_xfer_server_port(origin), 0);
	spec(&c2.f, &h, "r2", NULL);
	add_source(&c2.f, xy_xfer_server_port(s1), 1);
	add_source(&c2.f, xy_xfer_server_port(origin), 0);
	pthread_t t1, t2;
	XY_CHECK_EQ(pthread_create(&t2, NULL, chain_main, &c2), 0);
	XY_CHECK_EQ(pthread_create(&t1, NULL, chain_main, &c1), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	XY_CHECK_EQ(c1.st, XY_OBJ_OK);
	XY_CHECK_EQ(c2.st, XY_OBJ_OK);
	check_same(h.path, xy_test_path("r1"));
	check_same(h.path, xy_test_path("r2"));
	/* The origin sent the object once, to r1; r2 got it from s1. */
	uint64_t t0 = xy_mono_us();
	while (xy_xfer_server_bytes_sent(s1) != h.size &&
	       xy_mono_us() - t0 < 2000000)
		usleep(1000);
	XY_CHECK_EQ(xy_xfer_server_bytes_sent(origin), h.size);
	XY_CHECK_EQ(xy_xfer_server_bytes_sent(s1), h.size);
	xy_xfer_server_stop(origin);
	xy_xfer_server_stop(s1);
	free(h.chunks.hash);
	xy_test_check_no_leaks();
}

static void t_tokens(void)
{
	struct holder h = {0};
	make_object(&h, "obj", 2 * CHUNK);
	struct xy_xfer_server *a = serve(&h);
	int port = xy_xfer_server_port(a);
	uint8_t tok[XY_TOKEN_LEN];
	char err[256];
	uint64_t bytes;
	/* Bound to the receiver's name. */
	xy_token_make(secret, strlen(secret), h.id, expiry(), "r1", tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 0,
				  h.id, tok, "r2", xy_test_path("x"), 0, &bytes, err,
				  sizeof err), XY_OBJ_DENIED);
	/* Used twice (a fetch and its retry), then refused as replayed. */
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 0,
				  h.id, tok, "r1", xy_test_path("a"), 0, &bytes, err,
				  sizeof err), XY_OBJ_OK);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 0,
				  h.id, tok, "r1", xy_test_path("b"), 0, &bytes, err,
				  sizeof err), XY_OBJ_OK);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", port, secret, strlen(secret), 0,
				  h.id, tok, "r1", xy_test_path("c"), 0, &bytes, err,
				  sizeof err), XY_OBJ_DENIED);
	xy_xfer_server_stop(a);
	free(h.chunks.hash);
	xy_test_check_no_leaks();
}

/* A directory bigger than a chunk goes chunked and is unpacked. */
static void t_directory(void)
{
	struct holder h = {0}, tmp = {0};
	char err[256];
	XY_CHECK_EQ(xy_mkdir_p(xy_test_path("tree/sub")), 0);
	make_object(&tmp, "tree/sub/big", 2 * CHUNK + 9);
	free(tmp.chunks.hash);
	make_object(&tmp, "tree/a", 100);
	snprintf(h.path, sizeof h.path, "%s", xy_test_path("tree"));
	XY_CHECK_EQ(xy_object_hash_chunks(h.path, h.id, &h.kind, &h.size,
					  &h.chunks, err, sizeof err), 0);
	XY_CHECK_EQ(h.kind, XY_KIND_DIR);
	XY_CHECK_EQ(h.chunks.n, 3);
	h.have = 1;
	struct xy_xfer_server *a = serve(&h);
	struct fetch_args f;
	spec(&f, &h, "gotdir", NULL);
	add_source(&f, xy_xfer_server_port(a), 0);
	XY_CHECK_EQ(run(&f), XY_OBJ_OK);
	check_same(h.path, xy_test_path("gotdir"));
	/* A ranged GET of a directory's stream, after a corrupt chunk. */
	xy_xfer_server_corrupt(a, CHUNK + 1);
	struct xy_xfer_server *b = serve(&h);
	spec(&f, &h, "gotdir2", NULL);
	add_source(&f, xy_xfer_server_port(a), 0);
	add_source(&f, xy_xfer_server_port(b), 0);
	XY_CHECK_EQ(run(&f), XY_OBJ_OK);
	check_same(h.path, xy_test_path("gotdir2"));
	xy_xfer_server_stop(a);
	xy_xfer_server_stop(b);
	free(h.chunks.hash);
	xy_test_check_no_leaks();
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_chunk_list),
		XY_TEST(t_fetch_and_resume_offset),
		XY_TEST(t_failover),
		XY_TEST(t_local_failure),
		XY_TEST(t_partial_relay),
		XY_TEST(t_chain),
		XY_TEST(t_tokens),
		XY_TEST(t_directory),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
