/*
 * util.c: the small helpers of util.h: the error text helper behind the
 * convention of docs/errors.md, clocks, sandbox name checks, and file
 * utilities.
 */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SANDBOX_NAME 4096

int xy_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
	if (err && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	errno = e;
	return -1;
}

double xy_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double xy_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t xy_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int xy_check_sandbox_name(const char *name, char *err, size_t errlen)
{
	if (!name || !*name)
		return xy_fail(err, errlen, EINVAL, "empty sandbox name");
	size_t len = strnlen(name, MAX_SANDBOX_NAME + 1);
	if (len > MAX_SANDBOX_NAME)
		return xy_fail(err, errlen, EINVAL,
			       "sandbox name \"%.64s...\" is too long", name);
	if (name[0] == '/')
		return xy_fail(err, errlen, EINVAL,
			       "sandbox name \"%s\" is absolute", name);
	const char *p = name;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0)
			return xy_fail(err, errlen, EINVAL,
				       "sandbox name \"%s\" has an empty "
				       "component", name);
		if ((n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return xy_fail(err, errlen, EINVAL,
				       "sandbox name \"%s\" has a \".\" or "
				       "\"..\" component", name);
		if (!slash)
			return 0;
		p = slash + 1;
	}
}

int xy_mkdir_p(const char *path)
{
	size_t n = strlen(path);
	if (n == 0) {
		errno = ENOENT;
		return -1;
	}
	char *tmp = strdup(path);
	if (!tmp)
		return -1;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
			free(tmp);
			return -1;
		}
		*p = '/';
	}
	int rc = mkdir(tmp, 0755);
	free(tmp);
	if (rc < 0 && errno == EEXIST) {
		struct stat st;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
		errno = EEXIST;
		return -1;
	}
	return rc;
}

/* Removes the entries of the open directory dirfd, then nothing else; the
 * caller removes the directory itself. */
static int rm_dir_contents(int dirfd)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return -1;
	}
	int rc = 0, saved = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd, e->d_name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			rc = -1, saved = errno;
			continue;
		}
		/* A directory: make it ours to enter and empty first, since
		 * cache objects are stored read-only. */
		fchmodat(dirfd, e->d_name, 0700, 0);
		int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY |
							   O_NOFOLLOW |
							   O_CLOEXEC);
		if (sub < 0 || rm_dir_contents(sub) < 0 ||
		    unlinkat(dirfd, e->d_name, AT_REMOVEDIR) < 0) {
			rc = -1, saved = errno;
		}
	}
	closedir(d);
	if (rc < 0)
		errno = saved;
	return rc;
}

int xy_rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
	chmod(path, st.st_mode | S_IRWXU);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (rm_dir_contents(fd) < 0)
		return -1;
	return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
}

char *xy_read_file(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = max < 4096 ? max : 4096, n = 0;
	char *buf = malloc(cap + 1);
	while (buf) {
		if (n == cap) {
			if (cap >= max) {
				/* Probe for one more byte past the limit. */
				char c;
				ssize_t r = read(fd, &c, 1);
				if (r == 0)
					break;
				free(buf);
				buf = NULL;
				errno = r < 0 ? errno : EFBIG;
				break;
			}
			cap = cap * 2 > max ? max : cap * 2;
			char *p = realloc(buf, cap + 1);
			if (!p) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			buf = NULL;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	int saved = errno;
	close(fd);
	errno = saved;
	if (!buf)
		return NULL;
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

char *xy_read_secret(const char *path, size_t *len, char *err, size_t errlen)
{
	size_t n = 0;
	char *s = xy_read_file(path, 1 << 20, &n);
	if (!s) {
		xy_fail(err, errlen, errno, "cannot read secret file %s: %s",
			path, strerror(errno));
		return NULL;
	}
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = 0;
	if (n == 0) {
		free(s);
		xy_fail(err, errlen, EINVAL, "secret file %s is empty", path);
		return NULL;
	}
	if (len)
		*len = n;
	return s;
}

void xy_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

int xy_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int xy_unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = xy_hexval(s[2 * i]);
		int lo = hi < 0 ? -1 : xy_hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			errno = EINVAL;
			return -1;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int xy_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *h = s, *colon;
	size_t hl;
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			goto bad;
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			goto bad;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		goto bad;
	char *endp;
	errno = 0;
	long p = strtol(colon + 1, &endp, 10);
	if (colon[1] == 0 || *endp || errno || p < 0 || p > 65535)
		goto bad;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (int)p;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

size_t xy_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64];

	if (la >= 64 || lb >= 64)
		return 64;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

char *xy_env_take(const char *name, size_t *len)
{
	char *v = getenv(name);
	if (!v || !*v) {
		errno = 0;
		return NULL;
	}
	size_t n = strlen(v);
	char *copy = strdup(v);
	if (!copy) {
		errno = ENOMEM;
		return NULL;
	}
	/* In place: the initial environment lies in the process's own
	 * stack, where /proc/PID/environ reads it. */
	memset(v, 0, n);
	unsetenv(name);
	if (len)
		*len = n;
	return copy;
}

void xy_crash_point(const char *name)
{
	const char *at = getenv("XYLEM_CRASH_POINT");
	if (!at || strcmp(at, name))
		return;
	/* Visits are counted in the environment itself, so that the count
	 * needs no state of this library's. */
	const char *after = getenv("XYLEM_CRASH_AFTER");
	long left = after ? strtol(after, NULL, 10) : 1;
	if (left > 1) {
		char buf[24];
		snprintf(buf, sizeof buf, "%ld", left - 1);
		setenv("XYLEM_CRASH_AFTER", buf, 1);
		return;
	}
	kill(getpid(), SIGKILL);
}

/* The table for the byte-at-a-time CRC-32C (reflected 0x82F63B78). */
static uint32_t crc32c_byte(uint32_t crc, uint8_t b)
{
	crc ^= b;
	for (int k = 0; k < 8; k++)
		crc = (crc >> 1) ^ (0x82F63B78u & -(crc & 1));
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc;
	for (; n >= 8; n -= 8, p += 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = (uint32_t)c;
	for (; n; n--, p++)
		crc = __builtin_ia32_crc32qi(crc, *p);
	return crc;
}
#endif

uint32_t xy_crc32c(uint32_t crc, const void *data, size_t n)
{
	const uint8_t *p = data;
	crc = ~crc;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return ~crc32c_hw(crc, p, n);
#endif
	/* Without the instruction: a bit at a time, 8 steps a byte (slow,
	 * but only on machines without SSE 4.2). */
	for (; n; n--, p++)
		crc = crc32c_byte(crc, *p);
	return ~crc;
}

int xy_write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
