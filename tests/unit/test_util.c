/*
 * test_util.c: unit tests for util.h: the error helper, sandbox names,
 * directory helpers, file reading, hex and host:port parsing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	XY_CHECK(f);
	fputs(s, f);
	fclose(f);
}

static void t_fail(void)
{
	char err[16];
	errno = 0;
	XY_CHECK_EQ(xy_fail(err, sizeof err, ENOENT, "no %s here", "file"),
		    -1);
	XY_CHECK_EQ(errno, ENOENT);
	XY_CHECK(!strcmp(err, "no file here"));
	/* Truncated to the buffer, and NULL is allowed. */
	xy_fail(err, sizeof err, EINVAL, "%s", "a very long reason indeed");
	XY_CHECK_EQ(strlen(err), sizeof err - 1);
	XY_CHECK_EQ(xy_fail(NULL, 0, EIO, "x"), -1);
	XY_CHECK_EQ(errno, EIO);
}

static void t_clocks(void)
{
	XY_CHECK(xy_now() > 1.6e9);
	uint64_t a = xy_mono_us();
	usleep(2000);
	uint64_t b = xy_mono_us();
	XY_CHECK(b >= a + 2000);
}

static void t_sandbox_names(void)
{
	static const char *good[] = {"a", "a/b", "data.txt", "..a", "a..",
				     ".hidden", "a/.b/c", "x/y/z/w"};
	static const char *bad[] = {"", "/x", "a/../b", "..", ".", "a//b",
				    "a/", "./a", "a/.", "../x", "a/.."};
	char err[256];
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		XY_CHECK_EQ(xy_check_sandbox_name(good[i], err, sizeof err),
			    0);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = 0;
		XY_CHECK_EQ(xy_check_sandbox_name(bad[i], err, sizeof err),
			    -1);
		XY_CHECK_EQ(errno, EINVAL);
		XY_CHECK(err[0] != 0);
		if (bad[i][0]) { /* the reason quotes the name */
			char q[64];
			snprintf(q, sizeof q, "\"%s\"", bad[i]);
			XY_CHECK(strstr(err, q));
		}
	}
	XY_CHECK_EQ(xy_check_sandbox_name(NULL, err, sizeof err), -1);
	char *big = malloc(5000);
	memset(big, 'a', 4096);
	big[4096] = 0;
	XY_CHECK_EQ(xy_check_sandbox_name(big, err, sizeof err), 0);
	big[4096] = 'a';
	big[4097] = 0;
	XY_CHECK_EQ(xy_check_sandbox_name(big, err, sizeof err), -1);
	free(big);
}

static void t_mkdir_p_and_rm_rf(void)
{
	char path[4096], f[4200];
	snprintf(path, sizeof path, "%s/a/b/c", xy_test_tmpdir());
	XY_CHECK_EQ(xy_mkdir_p(path), 0);
	XY_CHECK_EQ(xy_mkdir_p(path), 0); /* exists: fine */
	struct stat st;
	XY_CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
	snprintf(f, sizeof f, "%s/file", path);
	write_file(f, "x");
	XY_CHECK_EQ(xy_mkdir_p(f), -1); /* a file is in the way */
	XY_CHECK_EQ(errno, EEXIST);

	/* Read-only tree, as in the cache. */
	chmod(f, 0444);
	chmod(path, 0555);
	snprintf(f, sizeof f, "%s/a/b", xy_test_tmpdir());
	chmod(f, 0555);
	snprintf(path, sizeof path, "%s/a/link", xy_test_tmpdir());
	XY_CHECK_EQ(symlink("/etc", path), 0);
	snprintf(path, sizeof path, "%s/a", xy_test_tmpdir());
	XY_CHECK_EQ(xy_rm_rf(path), 0);
	XY_CHECK(lstat(path, &st) < 0 && errno == ENOENT);
	XY_CHECK(stat("/etc/passwd", &st) == 0); /* link not followed */
	XY_CHECK_EQ(xy_rm_rf(path), 0);          /* missing: fine */

	snprintf(f, sizeof f, "%s/plain", xy_test_tmpdir());
	write_file(f, "y");
	XY_CHECK_EQ(xy_rm_rf(f), 0);
	XY_CHECK(access(f, F_OK) < 0);
}

static void t_read_file(void)
{
	char f[4096];
	snprintf(f, sizeof f, "%s/f", xy_test_tmpdir());
	write_file(f, "hello world");
	size_t n = 0;
	char *s = xy_read_file(f, 100, &n);
	XY_CHECK(s && n == 11 && !strcmp(s, "hello world"));
	free(s);
	s = xy_read_file(f, 11, &n);
	XY_CHECK(s && n == 11);
	free(s);
	XY_CHECK(xy_read_file(f, 10, &n) == NULL);
	XY_CHECK_EQ(errno, EFBIG);
	snprintf(f, sizeof f, "%s/missing", xy_test_tmpdir());
	XY_CHECK(xy_read_file(f, 10, &n) == NULL);
	XY_CHECK_EQ(errno, ENOENT);

	/* Larger than the first chunk. */
	snprintf(f, sizeof f, "%s/big", xy_test_tmpdir());
	char *big = malloc(100001);
	memset(big, 'z', 100000);
	big[100000] = 0;
	write_file(f, big);
	s = xy_read_file(f, 1 << 20, &n);
	XY_CHECK(s && n == 100000 && !memcmp(s, big, n));
	free(s);
	free(big);
}

static void t_read_secret(void)
{
	char f[4096], err[256];
	size_t n = 0;
	snprintf(f, sizeof f, "%s/secret", xy_test_tmpdir());
	write_file(f, "s3cret\n\n");
	char *s = xy_read_secret(f, &n, err, sizeof err);
	XY_CHECK(s && n == 6 && !strcmp(s, "s3cret"));
	free(s);
	write_file(f, "\n");
	XY_CHECK(xy_read_secret(f, &n, err, sizeof err) == NULL);
	XY_CHECK(strstr(err, "empty"));
	snprintf(f, sizeof f, "%s/none", xy_test_tmpdir());
	XY_CHECK(xy_read_secret(f, &n, err, sizeof err) == NULL);
	XY_CHECK(strstr(err, "none"));
}

static void t_hex(void)
{
	static const uint8_t in[] = {0x00, 0x1f, 0xa0, 0xff};
	char s[9];
	uint8_t out[4];
	xy_hex(in, 4, s);
	XY_CHECK(!strcmp(s, "001fa0ff"));
	XY_CHECK_EQ(xy_unhex(s, out, 4), 0);
	XY_CHECK(!memcmp(in, out, 4));
	XY_CHECK_EQ(xy_unhex("001FA0FF", out, 4), 0);
	XY_CHECK(!memcmp(in, out, 4));
	XY_CHECK_EQ(xy_unhex("001fa0f", out, 4), -1);
	XY_CHECK_EQ(xy_unhex("001fa0fg", out, 4), -1);
}

static void t_hostport(void)
{
	char host[64];
	int port = 0;
	XY_CHECK_EQ(xy_parse_hostport("localhost:9123", host, sizeof host,
				      &port), 0);
	XY_CHECK(!strcmp(host, "localhost") && port == 9123);
	XY_CHECK_EQ(xy_parse_hostport("[::1]:80", host, sizeof host, &port),
		    0);
	XY_CHECK(!strcmp(host, "::1") && port == 80);
	XY_CHECK_EQ(xy_parse_hostport("10.0.0.1:0", host, sizeof host,
				      &port), 0);
	XY_CHECK_EQ(port, 0);
	static const char *bad[] = {"host", "host:", ":80", "h:70000",
				    "h:-1", "h:1x", "::1:80", "[::1]80",
				    "[::1"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		XY_CHECK_EQ(xy_parse_hostport(bad[i], host, sizeof host,
					      &port), -1);
	XY_CHECK_EQ(xy_parse_hostport("abcdef:1", host, 4, &port), -1);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_fail),
		XY_TEST(t_clocks),
		XY_TEST(t_sandbox_names),
		XY_TEST(t_mkdir_p_and_rm_rf),
		XY_TEST(t_read_file),
		XY_TEST(t_read_secret),
		XY_TEST(t_hex),
		XY_TEST(t_hostport),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
